"""What a partition's stored rows are, checked against what the reader says it wrote.

Reads Parquet footers and the small ``position`` column only, never a message's text, and
reports counts and column names (ours), never values.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from soulprint_pipeline.export.rows import SCHEMA
from soulprint_pipeline.lake.store import COPY_CHUNK_BYTES, Lake, StoredParts


@dataclass
class PartsReport:
    """The stored rows of one partition: how many, of how many conversations, and what is
    wrong with their schema (empty when every part matches ``rows.SCHEMA``)."""

    parts: int = 0
    rows: int = 0
    conversations: int = 0  # conversations with rows: each one's rows are numbered from 0
    problems: list[str] = field(default_factory=list)


def _decoded(kind: pa.DataType) -> pa.DataType:
    # the writer dictionary-encodes some string columns; Parquet may read them back either way
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def schema_problems(schema: pa.Schema, expected: pa.Schema = SCHEMA) -> list[str]:
    """How ``schema`` differs from ``expected`` (column names and types), in a few words each."""
    names, wanted = list(schema.names), list(expected.names)
    if names != wanted:
        missing = [name for name in wanted if name not in names]
        extra = [name for name in names if name not in wanted]
        if missing or extra:
            return [f"missing columns {missing}, unexpected columns {extra}"]
        return [f"columns out of order: {names}"]
    problems = []
    for have, want in zip(schema, expected, strict=True):
        if _decoded(have.type) != want.type:
            problems.append(f"{want.name} is {have.type}, expected {want.type}")
    return problems


def inspect_parts(parts: StoredParts) -> PartsReport:
    """Every part's schema checked against ``rows.SCHEMA``, and its rows and conversations
    counted (a pass over the ``position`` column only)."""
    report = PartsReport(parts=len(parts.paths))
    for index, path in enumerate(parts.paths):
        with parts.lake.fs.open(path, "rb") as handle:
            part = pq.ParquetFile(handle)
            schema = part.schema_arrow
            report.rows += part.metadata.num_rows
            problems = schema_problems(schema)
            report.problems.extend(f"part {index}: {problem}" for problem in problems)
            if "position" not in schema.names or not pa.types.is_integer(
                schema.field("position").type
            ):
                continue  # reported above; such a part's conversations cannot be counted
            for group in range(part.num_row_groups):
                positions = part.read_row_group(group, columns=["position"]).column("position")
                started = pc.sum(pc.cast(pc.equal(positions, 0), pa.int64())).as_py()
                report.conversations += int(started or 0)
    return report


#: A user's lake assets, each computed from the one before.
CHAIN = ("raw_export", "conversation_batches", "quick_pass_soulprint")


def chain_problems(lake: Lake, user_id: str) -> list[str]:
    """How the current versions of ``user_id``'s assets fail to be one upload's chain: each
    current version computed from the current version before it, all of one upload, the rows
    parsed from the stored export's bytes (its sha256 recomputed), every file present.
    Empty when the lake is consistent (or holds nothing for the user)."""
    currents = {asset: lake.current(asset, user_id) for asset in CHAIN}
    if not any(currents.values()):
        return []
    problems = [f"{asset}: nothing current" for asset, m in currents.items() if m is None]
    if problems:
        return problems
    raw, rows, soulprint = (currents[asset] for asset in CHAIN)
    for upstream, asset in itertools.pairwise(CHAIN):
        if currents[asset].get("inputs", {}).get(upstream) != currents[upstream]["version"]:
            problems.append(f"{asset} was not computed from the current {upstream}")
    if len({m.get("upload") for m in currents.values()}) != 1:
        problems.append("the current versions come from different uploads")
    if rows.get("source_sha256") != raw["sha256"]:
        problems.append("conversation_batches was parsed from other bytes than raw_export's")
    digest = hashlib.sha256()
    try:
        with lake.fs.open(raw["url"], "rb") as handle:
            while chunk := handle.read(COPY_CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        problems.append("raw_export: the stored export is gone")
    else:
        if digest.hexdigest() != raw["sha256"]:
            problems.append("raw_export: the stored export is not the bytes its sha256 names")
    missing = [path for path in rows.get("parts", []) if not lake.fs.exists(path)]
    if missing:
        problems.append(f"conversation_batches: {len(missing)} parts gone")
    if not lake.fs.exists(soulprint["file"]):
        problems.append("quick_pass_soulprint: the soulprint is gone")
    return problems
