"""Asset checks that guard the rows, the soulprint and the app's row, computed inside the
assets that produce them (each asset yields its checks after its output is stored).

Why inside: the reader's own counts exist only while ``conversation_batches`` runs, and a
separate check would be one more step (one more process) per user and per asset. The checks
are partitioned like their assets, so each user's results show apart in the UI, and blocking:
a failed one fails the step after its materialization, and nothing downstream runs.

The logic lives in the library (``lake.verify``, ``soulprint.sections``, ``mirror.agreement``);
this module only turns its answers into check results. No result holds the person's text.
"""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from soulprint_pipeline.defs.partitions import users
from soulprint_pipeline.export.reader import ReadStats
from soulprint_pipeline.lake.store import Lake, StoredParts
from soulprint_pipeline.lake.verify import inspect_parts
from soulprint_pipeline.mirror.agreement import COMPARED, disagreements
from soulprint_pipeline.mirror.progress import ProgressTracker
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError
from soulprint_pipeline.soulprint.field_evidence import sections_of
from soulprint_pipeline.soulprint.sections import SoulprintValidationError, validate_sections

ROWS_MATCH_SCHEMA = "rows_match_schema"
CONVERSATIONS_COUNTED = "conversations_counted"
SECTIONS_VALID = "sections_valid"
MIRROR_AGREES = "mirror_agrees_with_lake"


def _spec(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    # partitions_def on a check is a preview in Dagster 1.13; it is what records each result
    # against its user, so the warning is known and silenced here only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset, description=description, blocking=True, partitions_def=users
        )


BATCHES_CHECKS = [
    _spec(
        ROWS_MATCH_SCHEMA,
        "conversation_batches",
        "Every Parquet part has the columns and types of rows.SCHEMA, and an export with "
        "conversations that have messages gave rows (as many as the reader counted).",
    ),
    _spec(
        CONVERSATIONS_COUNTED,
        "conversation_batches",
        "The stored rows hold as many conversations as the reader found with visible messages.",
    ),
]
SOULPRINT_CHECKS = [
    _spec(
        SECTIONS_VALID,
        "quick_pass_soulprint",
        "The soulprint in the lake passes validate_sections unchanged (five sections, every "
        "field of its type, no 'Assistant' as the AI's name).",
    ),
    _spec(
        MIRROR_AGREES,
        "quick_pass_soulprint",
        "The user's user_profiles row carries the soulprint the lake holds (soulprint, ai_name, "
        "archetype), so the app shows what the pipeline made.",
    ),
]


def rows_checks(parts: StoredParts, stats: ReadStats) -> Iterator[dg.AssetCheckResult]:
    """The checks of ``conversation_batches``: its stored parts against the reader's counts."""
    report = inspect_parts(parts)
    empty = stats.conversations_with_messages > 0 and report.rows == 0
    miscounted = report.rows != stats.rows
    problems = list(report.problems)
    if empty:
        problems.append("no rows, though the reader found conversations with messages")
    elif miscounted:
        problems.append(f"{report.rows} rows stored, the reader counted {stats.rows}")
    yield dg.AssetCheckResult(
        check_name=ROWS_MATCH_SCHEMA,
        passed=not problems,
        metadata={
            "parts": report.parts,
            "rows": report.rows,
            "reader_rows": stats.rows,
            "problems": dg.MetadataValue.md(_bullets(problems) or "none"),
        },
    )
    yield dg.AssetCheckResult(
        check_name=CONVERSATIONS_COUNTED,
        passed=report.conversations == stats.conversations_with_messages,
        metadata={
            "conversations_in_rows": report.conversations,
            "reader_conversations_with_messages": stats.conversations_with_messages,
            "reader_conversations": stats.conversations,
        },
    )


def soulprint_checks(
    lake: Lake, manifest: dict[str, Any], store: ProfileStore, tracker: ProgressTracker
) -> Iterator[dg.AssetCheckResult]:
    """The checks of ``quick_pass_soulprint``, once it is saved: the soulprint version this run
    stored, read back and validated, and the user's row compared with it.

    The row's disagreement blocks only when the mirror took the writes: a mirror that was down
    (``tracker.lagging``) is brought up to date by ``mirror_reconcile_sensor``, and a soulprint
    a newer upload's replaced is not the one the row should carry; both warn.
    """
    user_id = tracker.user_id
    stored = sections_of(lake.read_json(manifest["file"]))
    try:
        valid = validate_sections(stored) == stored
        problem = "" if valid else "validating the stored soulprint changes it"
    except SoulprintValidationError as error:
        # names the field and the expected type, never the value
        valid, problem = False, str(error)
    yield dg.AssetCheckResult(
        check_name=SECTIONS_VALID,
        passed=valid,
        description=problem or None,
        metadata={"lake_version": manifest["version"]},
    )

    current = lake.current("quick_pass_soulprint", user_id) or {}
    superseded = current.get("upload", "") > manifest.get("upload", "")
    metadata: dict[str, Any] = {
        "lake_version": manifest["version"],
        "compared": ", ".join(COMPARED),
        "quiet_run": tracker.quiet,
        "mirror_lagging": tracker.lagging,
        "superseded": superseded,
    }
    # a quiet run (the user was complete; no new upload) leaves the status columns alone but
    # still saves the soulprint columns: the row must agree either way
    note = (
        "Quiet run: the import status was left as it was; the soulprint columns were saved."
        if tracker.quiet
        else None
    )
    lagging = "mirror_reconcile_sensor rewrites the row once user_profiles is back"
    try:
        row = store.get(user_id)
    except ProfileStoreError as error:
        yield dg.AssetCheckResult(
            check_name=MIRROR_AGREES,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"user_profiles could not be read: {error}; {lagging}",
            metadata=metadata,
        )
        return
    differing = disagreements(row, stored)
    metadata["differing"] = ", ".join(differing) or "none"
    if not differing:
        description = note
    elif superseded:
        description = "A newer upload's soulprint replaced this one; the row carries that one."
    elif tracker.lagging:
        description = f"user_profiles was down when the soulprint was saved: {lagging}."
    else:
        description = f"user_profiles differs from the lake in: {', '.join(differing)}"
    yield dg.AssetCheckResult(
        check_name=MIRROR_AGREES,
        passed=not differing,
        severity=(
            dg.AssetCheckSeverity.WARN
            if superseded or tracker.lagging
            else dg.AssetCheckSeverity.ERROR
        ),
        description=description,
        metadata=metadata,
    )


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)
