"""ProgressTracker and the failure helpers, on a real SQLite user_profiles with a fake clock."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster_shared.error import SerializableErrorInfo

from soulprint_pipeline.errors import (
    NotAnExportError,
    StorageError,
    TruncatedExportError,
    message_for_person,
)
from soulprint_pipeline.mirror.columns import MAX_IMPORT_ERROR_CHARS
from soulprint_pipeline.mirror.progress import (
    COMPLETE,
    DOWNLOADING,
    GENERATING,
    PARSING,
    ProgressTracker,
    is_quiet,
    record_failure,
)
from soulprint_pipeline.mirror.registry import open_profile_store
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError
from soulprint_pipeline.users import InvalidUserIdError, validate_user_id

USER = "user-1"
SECRET = "my secret diary entry about Lisbon"


class Clock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float) -> None:
        self.t += seconds


class CountingStore(ProfileStore):
    """Delegates to a real store and records every upsert (user id, fields)."""

    backend = "counting"

    def __init__(self, inner: ProfileStore) -> None:
        self.inner = inner
        self.upserts: list[tuple[str, dict[str, Any]]] = []

    def ensure_schema(self) -> None:
        self.inner.ensure_schema()

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        self.upserts.append((user_id, dict(fields)))
        self.inner.upsert(user_id, fields)

    def get(self, user_id: str) -> dict[str, Any] | None:
        return self.inner.get(user_id)

    def close(self) -> None:
        self.inner.close()


class DownStore(ProfileStore):
    """A mirror that is down: every call fails the way a real backend's failure surfaces."""

    backend = "down"

    def __init__(self) -> None:
        self.upsert_calls = 0

    def ensure_schema(self) -> None:
        raise ProfileStoreError("PostgreSQL schema update of user_profiles failed: down")

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        self.upsert_calls += 1
        raise ProfileStoreError("PostgreSQL upsert of user_profiles failed: connection refused")

    def get(self, user_id: str) -> dict[str, Any] | None:
        raise ProfileStoreError("PostgreSQL read of user_profiles failed: connection refused")

    def close(self) -> None:
        pass


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[ProfileStore]:
    store = open_profile_store(f"sqlite:///{tmp_path}/p.sqlite3")
    store.ensure_schema()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store(sqlite_store: ProfileStore) -> CountingStore:
    return CountingStore(sqlite_store)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _tracker(store: ProfileStore | None, clock: Clock, **kwargs: Any) -> ProgressTracker:
    return ProgressTracker(USER, store, clock=clock, **kwargs)


# --------------------------------------------------------------------------------------------
# Monotone percent, throttling


def test_percent_never_decreases(store: CountingStore, clock: Clock) -> None:
    tracker = _tracker(store, clock, min_interval=1.0)
    tracker.start(PARSING)
    clock.tick(5)
    tracker.advance(PARSING, 0.5)
    assert store.get(USER)["progress_percent"] == 35
    writes = len(store.upserts)
    clock.tick(5)
    tracker.advance(PARSING, 0.2)  # lower: ignored, not even written
    assert tracker.percent == 35
    assert len(store.upserts) == writes
    assert store.get(USER)["progress_percent"] == 35
    clock.tick(5)
    tracker.advance(PARSING, 7.0)  # clamped to the end of the stage
    assert store.get(USER)["progress_percent"] == PARSING.end
    # even a stage with a lower span keeps the percent where it was
    clock.tick(5)
    tracker.advance(DOWNLOADING, 0.5)
    assert tracker.percent == PARSING.end
    assert store.get(USER)["progress_percent"] == PARSING.end


def test_writes_are_throttled_except_stage_changes(store: CountingStore, clock: Clock) -> None:
    tracker = _tracker(store, clock, min_interval=1.0)
    tracker.start(PARSING)  # written at once
    assert [f["progress_percent"] for _, f in store.upserts] == [20]
    tracker.advance(PARSING, 0.1)  # same instant: throttled
    clock.tick(0.5)
    tracker.advance(PARSING, 0.2)  # 0.5 s after the last write: throttled
    assert len(store.upserts) == 1
    assert store.get(USER)["progress_percent"] == 20
    clock.tick(0.5)
    tracker.advance(PARSING, 0.3)  # a full interval later: written
    assert [f["progress_percent"] for _, f in store.upserts] == [20, 29]
    clock.tick(0.1)
    tracker.advance(GENERATING, 0.0)  # a new stage is written at once
    clock.tick(0.1)
    tracker.advance(GENERATING, 0.5)  # throttled again
    clock.tick(0.1)
    tracker.advance(GENERATING, 0.6, force=True)  # forced: written
    assert [(f["import_stage"], f["progress_percent"]) for _, f in store.upserts] == [
        (PARSING.name, 20),
        (PARSING.name, 29),
        (GENERATING.name, 50),
        (GENERATING.name, 68),
    ]
    row = store.get(USER)
    assert row["import_status"] == "processing"
    assert (row["import_stage"], row["progress_percent"]) == (GENERATING.name, 68)


def test_start_writes_extra_fields(store: CountingStore, clock: Clock) -> None:
    tracker = _tracker(store, clock)
    tracker.start(GENERATING, total_conversations=3, total_messages=12)
    row = store.get(USER)
    assert row["import_stage"] == GENERATING.name and row["progress_percent"] == 50
    assert (row["total_conversations"], row["total_messages"]) == (3, 12)


def test_quiet_mode_writes_nothing_but_calls_the_listener(
    store: CountingStore, clock: Clock
) -> None:
    seen: list[tuple[str, int]] = []
    tracker = _tracker(store, clock, quiet=True, listener=lambda s, p: seen.append((s, p)))
    tracker.start(DOWNLOADING)
    clock.tick(2)
    tracker.advance(DOWNLOADING, 1.0)
    tracker.start(PARSING)
    tracker.fail("something broke")
    assert store.upserts == []
    assert store.get(USER) is None
    assert seen == [(DOWNLOADING.name, 0), (DOWNLOADING.name, 20), (PARSING.name, 20)]


def test_listener_sees_exactly_the_written_updates(store: CountingStore, clock: Clock) -> None:
    seen: list[tuple[str, int]] = []
    tracker = _tracker(store, clock, listener=lambda s, p: seen.append((s, p)))
    tracker.start(DOWNLOADING)
    tracker.advance(DOWNLOADING, 0.5)  # throttled: neither written nor reported
    clock.tick(1)
    tracker.advance(DOWNLOADING, 0.5)
    assert seen == [(f["import_stage"], f["progress_percent"]) for _, f in store.upserts]
    assert seen == [(DOWNLOADING.name, 0), (DOWNLOADING.name, 10)]


# --------------------------------------------------------------------------------------------
# complete() and fail()


def test_complete_sets_status_and_columns(store: CountingStore, clock: Clock) -> None:
    seen: list[tuple[str, int]] = []
    tracker = _tracker(store, clock, listener=lambda s, p: seen.append((s, p)))
    tracker.start(GENERATING)
    store.inner.upsert(USER, {"import_error": "an old error"})
    soulprint = {"identity": {"ai_name": "Nova", "archetype": "The Builder"}, "soul": ["kind"]}
    tracker.complete(
        {"soulprint": soulprint, "ai_name": "Nova", "total_messages": 42, "soul_md": "# Soul"}
    )
    row = store.get(USER)
    assert row["import_status"] == "complete"
    assert row["import_stage"] == COMPLETE.name
    assert row["progress_percent"] == 100
    assert row["import_error"] is None
    assert row["soulprint"] == soulprint
    assert (row["ai_name"], row["total_messages"], row["soul_md"]) == ("Nova", 42, "# Soul")
    assert seen[-1] == (COMPLETE.name, 100)
    assert (tracker.stage, tracker.percent) == (COMPLETE.name, 100)


def test_quiet_complete_saves_the_new_soulprint_but_keeps_the_status(
    store: CountingStore, clock: Clock
) -> None:
    store.inner.upsert(
        USER,
        {
            "import_status": "complete",
            "import_stage": COMPLETE.name,
            "progress_percent": 100,
            "soulprint": {"v": 1},
        },
    )
    tracker = _tracker(store, clock, quiet=True)
    tracker.start(GENERATING)
    tracker.complete({"soulprint": {"v": 2}})
    assert len(store.upserts) == 1  # only the final save
    assert "import_status" not in store.upserts[0][1]
    row = store.get(USER)
    assert row["import_status"] == "complete" and row["progress_percent"] == 100
    assert row["soulprint"] == {"v": 2}


def test_fail_truncates_the_message(store: CountingStore, clock: Clock) -> None:
    tracker = _tracker(store, clock)
    tracker.start(PARSING)
    tracker.fail("x" * 2000)
    row = store.get(USER)
    assert row["import_status"] == "failed"
    assert row["import_stage"] == PARSING.name  # where it stopped
    # the store keeps the first 500 characters (the column's limit), marked as cut
    assert row["import_error"] == "x" * (MAX_IMPORT_ERROR_CHARS - 1) + "…"


def test_fail_before_any_stage_says_queued(store: CountingStore, clock: Clock) -> None:
    _tracker(store, clock).fail("The upload is missing.")
    row = store.get(USER)
    assert (row["import_status"], row["import_stage"]) == ("failed", "Queued")
    assert row["import_error"] == "The upload is missing."


def test_no_store_is_fine(clock: Clock) -> None:
    seen: list[tuple[str, int]] = []
    tracker = _tracker(None, clock, listener=lambda s, p: seen.append((s, p)))
    tracker.start(PARSING)
    tracker.fail("nope")
    tracker.complete({"total_messages": 1})
    assert seen == [(PARSING.name, 20), (COMPLETE.name, 100)]


# --------------------------------------------------------------------------------------------
# A mirror that is down


def test_advance_swallows_a_mirror_error(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    store = DownStore()
    seen: list[tuple[str, int]] = []
    tracker = _tracker(store, clock, listener=lambda s, p: seen.append((s, p)))
    with caplog.at_level(logging.WARNING, logger="soulprint_pipeline.mirror.progress"):
        tracker.start(DOWNLOADING)
        clock.tick(2)
        tracker.advance(DOWNLOADING, 0.5)
    assert store.upsert_calls == 2
    assert seen == [(DOWNLOADING.name, 0), (DOWNLOADING.name, 10)]
    assert tracker.percent == 10  # the import goes on
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("progress write for user-1 skipped" in r.getMessage() for r in warnings)
    assert "connection refused" in warnings[0].getMessage()


def test_complete_retries_with_doubling_backoff_then_leaves_it_to_the_sensor(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = DownStore()
    delays: list[float] = []
    tracker = _tracker(store, clock, final_attempts=4, backoff_seconds=0.25, sleep=delays.append)
    with caplog.at_level(logging.WARNING, logger="soulprint_pipeline.mirror.progress"):
        tracker.complete({"total_messages": 3})  # the import is not failed for the mirror
    assert tracker.lagging
    assert store.upsert_calls == 4
    assert delays == [0.25, 0.5, 1.0]  # no sleep after the last attempt
    retries = [r.getMessage() for r in caplog.records if "final status write" in r.getMessage()]
    assert len(retries) == 4 and "attempt 1" in retries[0] and "attempt 3" in retries[2]
    assert "given up; the row lags the lake" in retries[-1]


def test_fail_retries_too(clock: Clock) -> None:
    store = DownStore()
    delays: list[float] = []
    tracker = _tracker(store, clock, sleep=delays.append)  # defaults: 5 attempts, 0.5 s
    tracker.fail("bad file")
    assert tracker.lagging
    assert store.upsert_calls == 5
    assert delays == [0.5, 1.0, 2.0, 4.0]


def test_complete_succeeds_once_the_mirror_is_back(
    sqlite_store: ProfileStore, clock: Clock
) -> None:
    class Flaky(CountingStore):
        failures = 2

        def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
            if self.failures:
                self.failures -= 1
                self.upserts.append((user_id, dict(fields)))
                raise ProfileStoreError("PostgreSQL upsert of user_profiles failed: blip")
            super().upsert(user_id, fields)

    store = Flaky(sqlite_store)
    delays: list[float] = []
    _tracker(store, clock, sleep=delays.append).complete({"total_messages": 9})
    assert delays == [0.5, 1.0]
    assert len(store.upserts) == 3
    row = sqlite_store.get(USER)
    assert row["import_status"] == "complete" and row["total_messages"] == 9


# --------------------------------------------------------------------------------------------
# is_quiet


def _set_status(store: ProfileStore, status: str) -> None:
    store.upsert(USER, {"import_status": status, "import_stage": "x", "progress_percent": 5})


def test_is_quiet_rules(sqlite_store: ProfileStore) -> None:
    assert not is_quiet(sqlite_store, USER)  # no row yet
    assert not is_quiet(None, USER)
    _set_status(sqlite_store, "complete")
    # a backfill or a re-import of a complete user: they stay complete whatever happens to it
    assert is_quiet(sqlite_store, USER)
    for status in ("processing", "failed", "none"):
        _set_status(sqlite_store, status)
        assert not is_quiet(sqlite_store, USER), status


def test_is_quiet_when_the_store_is_down(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="soulprint_pipeline.mirror.progress"):
        assert not is_quiet(DownStore(), USER)
    assert any("could not read user_profiles for user-1" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------
# record_failure


def test_record_failure_leaves_a_complete_user_alone(sqlite_store: ProfileStore) -> None:
    sqlite_store.upsert(
        USER,
        {"import_status": "complete", "import_stage": "Complete", "soulprint": {"ok": True}},
    )
    before = sqlite_store.get(USER)
    assert record_failure(sqlite_store, USER, "boom") is False
    assert sqlite_store.get(USER) == before


def test_record_failure_marks_others_failed(sqlite_store: ProfileStore) -> None:
    sqlite_store.upsert(
        USER,
        {"import_status": "processing", "import_stage": PARSING.name, "progress_percent": 33},
    )
    assert record_failure(sqlite_store, USER, "The export is cut short." + "!" * 900) is True
    row = sqlite_store.get(USER)
    assert row["import_status"] == "failed"
    assert row["import_stage"] == PARSING.name and row["progress_percent"] == 33
    assert row["import_error"].startswith("The export is cut short.")
    assert len(row["import_error"]) == MAX_IMPORT_ERROR_CHARS
    # a user with no row at all gets one, at the first stage
    assert record_failure(sqlite_store, "newbie", "No export has been uploaded.") is True
    row = sqlite_store.get("newbie")
    assert (row["import_status"], row["import_stage"]) == ("failed", "Queued")
    # an earlier failure is overwritten with the newer message
    assert record_failure(sqlite_store, "newbie", "second") is True
    assert sqlite_store.get("newbie")["import_error"] == "second"


# --------------------------------------------------------------------------------------------
# message_for_person


@pytest.mark.parametrize(
    "error",
    [
        TruncatedExportError("The export is cut short at byte 1,234 (of 5,000)."),
        NotAnExportError("The file looks like an HTML page, not a ChatGPT or Claude export."),
        StorageError("The upload s3://b/u/x.zip is not in storage (HTTP 404)."),
    ],
    ids=lambda error: type(error).__name__,
)
def test_our_errors_give_their_own_message(error: Exception) -> None:
    assert message_for_person(error) == str(error)


def test_invalid_user_id_gives_its_message() -> None:
    with pytest.raises(InvalidUserIdError) as caught:
        validate_user_id("../etc")
    assert message_for_person(caught.value) == str(caught.value)
    assert "Invalid user id" in message_for_person(caught.value)


def test_unknown_errors_give_only_their_type() -> None:
    message = message_for_person(RuntimeError(SECRET))
    assert SECRET not in message and "Lisbon" not in message
    assert "RuntimeError" in message
    assert message == "The import failed unexpectedly (RuntimeError); the team has been told."
    key_error = message_for_person(KeyError(SECRET))
    assert SECRET not in key_error and "KeyError" in key_error


def test_profile_store_errors_are_not_shown_raw() -> None:
    message = message_for_person(
        ProfileStoreError("PostgreSQL upsert of user_profiles failed: OperationalError")
    )
    assert "could not be saved" in message and "PostgreSQL" not in message


def _dagster_wrapped(inner: Exception) -> BaseException:
    try:
        try:
            raise inner
        except Exception as error:
            raise dg.DagsterUserCodeExecutionError(
                "Error occurred while executing op quick_pass_soulprint",
                user_exception=error,
                original_exc_info=sys.exc_info(),
            ) from error
    except dg.DagsterUserCodeExecutionError as wrapped:
        return wrapped


def test_a_dagster_wrapped_error_finds_ours_in_the_chain() -> None:
    ours = TruncatedExportError("The export is cut short at byte 99.")
    assert message_for_person(_dagster_wrapped(ours)) == str(ours)
    # implicit chaining (raised while handling another error) is followed too
    try:
        try:
            raise ours
        except TruncatedExportError:
            raise ValueError(SECRET)  # noqa: B904 - implicit chaining on purpose
    except ValueError as outer:
        implicit = outer
    assert message_for_person(implicit) == str(ours)


def test_a_dagster_wrapped_unknown_error_leaks_nothing() -> None:
    message = message_for_person(_dagster_wrapped(RuntimeError(SECRET)))
    assert SECRET not in message
    assert message.startswith("The import failed unexpectedly (")


def _recorded(error: BaseException) -> SerializableErrorInfo:
    return serializable_error_info_from_exc_info((type(error), error, error.__traceback__))


def test_a_recorded_error_gives_the_same_message_as_the_live_one() -> None:
    ours = TruncatedExportError("The export is cut short at byte 99.")
    assert message_for_person(_recorded(_dagster_wrapped(ours))) == str(ours)
    mirror = ProfileStoreError("PostgreSQL upsert of user_profiles failed: OperationalError")
    assert "could not be saved" in message_for_person(_recorded(_dagster_wrapped(mirror)))
    unknown = message_for_person(_recorded(_dagster_wrapped(RuntimeError(SECRET))))
    assert unknown == "The import failed unexpectedly (RuntimeError); the team has been told."


def test_a_failed_blocking_check_names_the_checks_live_and_recorded() -> None:
    from dagster._core.errors import DagsterAssetCheckFailedError

    # the message Dagster builds (execute_step.py), plus a line no check name could make
    try:
        raise DagsterAssetCheckFailedError(
            "2 blocking asset checks failed with ERROR severity:\n"
            "conversation_batches: rows_match_schema,conversations_counted\n"
            f"quick pass: {SECRET}"
        )
    except DagsterAssetCheckFailedError as error:
        failed = error
    expected = (
        "The import stopped at a quality check of its result (rows_match_schema, "
        "conversations_counted on conversation_batches): nothing past it reached the app. "
        "The team has been told."
    )
    assert message_for_person(failed) == expected
    assert message_for_person(_recorded(failed)) == expected
    assert SECRET not in message_for_person(DagsterAssetCheckFailedError(SECRET))
