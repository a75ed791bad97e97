"""Import progress: the stages a person sees in the app, mirrored into ``user_profiles``.

One :class:`ProgressTracker` per step of an import run. Percent never moves backwards, writes
to the mirror are throttled (a 2 GB parse must not hammer the database), and a mirror that is
down never fails the import: progress updates are skipped, the final status write is retried
a few times and then given up with a warning (``lagging``): the row stays behind the lake
until ``mirror_reconcile_sensor`` (defs/reconcile.py) rewrites it once the database is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError

log = logging.getLogger(__name__)


class Stage(NamedTuple):
    """A named stage, the span of percents it advances through, and the ``import_status``
    the app sees during it."""

    name: str
    start: int
    end: int
    status: str = "processing"


QUEUED = Stage("Queued", 0, 0)
DOWNLOADING = Stage("Downloading export", 0, 20)
PARSING = Stage("Parsing conversations", 20, 50)
GENERATING = Stage("Generating soulprint", 50, 80)
#: The soulprint is saved: the app can start with it while the memory is built.
REMEMBERING = Stage("Creating memory chunks", 80, 100, status="quick_ready")
COMPLETE = Stage("Complete", 100, 100, status="complete")

#: Called with (stage name, percent) for every update that is written (or would be, if quiet).
Listener = Callable[[str, int], None]


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def is_quiet(store: ProfileStore | None, user_id: str) -> bool:
    """Whether a run must leave the person's row alone until it has a new soulprint to save.

    A re-run of a user who is already ``complete`` (a backfill, a prompt change, or a new
    upload) keeps them ``complete`` with their last good soulprint in the app, whatever
    happens to the run, a ``kill -9`` included; its progress shows in Dagster only, and a
    new soulprint replaces the old one in the row when it is saved.
    """
    if store is None:
        return False
    try:
        row = store.get(user_id)
    except ProfileStoreError as error:
        log.warning("could not read user_profiles for %s: %s", user_id, error)
        return False
    return bool(row) and row.get("import_status") == "complete"


class ProgressTracker:
    """Monotone, throttled progress of one step of one user's import."""

    def __init__(
        self,
        user_id: str,
        store: ProfileStore | None,
        *,
        quiet: bool = False,
        listener: Listener | None = None,
        min_interval: float = 1.0,
        final_attempts: int = 5,
        backoff_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.user_id = user_id
        self.store = store
        self.quiet = quiet
        self.listener = listener
        self.min_interval = min_interval
        self.final_attempts = final_attempts
        self.backoff_seconds = backoff_seconds
        self._clock = clock
        self._sleep = sleep
        self.stage: str | None = None
        self.percent = -1
        #: Whether a final write gave up (the mirror was down): the row lags the lake until
        #: ``mirror_reconcile_sensor`` rewrites it.
        self.lagging = False
        self._last_write = float("-inf")

    def start(self, stage: Stage, **fields: Any) -> None:
        """Enter ``stage`` at its first percent (written at once); ``fields`` go to the row too."""
        self.advance(stage, 0.0, force=True, **fields)

    def advance(self, stage: Stage, fraction: float, *, force: bool = False, **fields: Any) -> None:
        """Report ``fraction`` (0-1) of ``stage`` done; written at most once per interval."""
        fraction = min(max(fraction, 0.0), 1.0)
        percent = max(self.percent, stage.start + round((stage.end - stage.start) * fraction))
        changed_stage = stage.name != self.stage
        if percent == self.percent and not changed_stage and not fields:
            return
        if not (force or changed_stage) and self._clock() - self._last_write < self.min_interval:
            return
        self.stage, self.percent = stage.name, percent
        self._last_write = self._clock()
        log.info("%s: %3d%%  %s", self.user_id, percent, stage.name)
        if self.listener is not None:
            self.listener(stage.name, percent)
        if self.quiet or self.store is None:
            return
        row = {
            "import_status": stage.status,
            "import_stage": stage.name,
            "progress_percent": percent,
            **fields,
        }
        try:
            self.store.upsert(self.user_id, row)
        except ProfileStoreError as error:  # the import goes on; only the app's view lags
            log.warning("progress write for %s skipped: %s", self.user_id, error)

    def complete(
        self,
        fields: Mapping[str, Any],
        stage: Stage = COMPLETE,
        still_current: Callable[[], bool] | None = None,
    ) -> None:
        """Save a finished part of the import with ``fields``, retrying: the soulprint
        (``REMEMBERING``: ``quick_ready``, 80 %) or the whole import (``COMPLETE``, 100 %).

        With ``still_current``, the row is written only if it holds, asked under the store's
        lock on this user (see ``ProfileStore.upsert_if``): a soulprint another run of the user
        replaced in the lake meanwhile is not written over the one that replaced it."""
        log.info("%s: %3d%%  %s", self.user_id, stage.start, stage.name)
        if self.listener is not None:
            self.listener(stage.name, stage.start)
        self.stage, self.percent = stage.name, stage.start
        row = dict(fields)
        if not self.quiet:
            row.update(
                import_status=stage.status,
                import_stage=stage.name,
                progress_percent=stage.start,
                import_error=None,
            )
        if row:  # a quiet run with nothing to save leaves the row alone
            self._write_final(row, still_current)

    def fail(self, message: str) -> None:
        """Record a failed import with a user-safe ``message`` (unless this run is quiet)."""
        if self.quiet or self.store is None:
            return
        self._write_final(
            {
                "import_status": "failed",
                "import_stage": self.stage or QUEUED.name,
                "import_error": message,  # the store keeps the first 500 characters
            }
        )

    def _write_final(
        self, row: Mapping[str, Any], still_current: Callable[[], bool] | None = None
    ) -> None:
        if self.store is None:
            return
        delay = self.backoff_seconds
        for attempt in range(1, self.final_attempts + 1):
            try:
                if still_current is None:
                    self.store.upsert(self.user_id, row)
                elif not self.store.upsert_if(self.user_id, row, still_current):
                    log.info(
                        "%s: another run's soulprint replaced this one; the row is left to it",
                        self.user_id,
                    )
                return
            except ProfileStoreError as error:
                if attempt == self.final_attempts:
                    # the import goes on; mirror_reconcile_sensor rewrites the row later
                    self.lagging = True
                    log.warning(
                        "final status write for %s given up; the row lags the lake: %s",
                        self.user_id,
                        error,
                    )
                    return
                log.warning(
                    "final status write for %s failed (attempt %d): %s",
                    self.user_id,
                    attempt,
                    error,
                )
                self._sleep(delay)
                delay *= 2


def record_failure(store: ProfileStore, user_id: str, message: str) -> bool:
    """Mark the user's import ``failed`` with ``message`` unless they are ``complete``.

    A user who is ``complete`` keeps their last good soulprint whatever happens to a re-run
    (see :func:`is_quiet`). Returns whether the row was changed.
    """
    row = store.get(user_id) or {}
    if row.get("import_status") == "complete":
        return False
    store.upsert(
        user_id,
        {
            "import_status": "failed",
            "import_stage": row.get("import_stage") or QUEUED.name,
            "import_error": message,  # the store keeps the first 500 characters
        },
    )
    return True
