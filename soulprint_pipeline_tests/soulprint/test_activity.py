"""The activity counts and their picture: counts by time only."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from soulprint_pipeline.export.rows import UTC_MICROS
from soulprint_pipeline.soulprint.activity import Activity, render_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _batch(rows: list[tuple[str, str, datetime | None]]) -> pa.RecordBatch:
    roles, kinds, times = zip(*rows, strict=True)
    return pa.record_batch(
        {
            "role": pa.array(roles).dictionary_encode(),
            "content_type": pa.array(kinds),
            "created_at": pa.array(times, type=UTC_MICROS),
        }
    )


def test_only_the_persons_dated_messages_are_counted() -> None:
    monday_9 = datetime(2024, 1, 1, 9, 30, tzinfo=UTC)
    sunday_23 = datetime(2024, 3, 31, 23, 59, tzinfo=UTC)
    activity = Activity()
    activity.add(
        _batch(
            [
                ("user", "text", monday_9),
                ("user", "text", monday_9),
                ("user", "text", sunday_23),
                ("user", "text", None),
                ("assistant", "text", monday_9),
                ("user", "custom_instructions", monday_9),
            ]
        )
    )
    assert activity.grid[0][9] == 2 and activity.grid[6][23] == 1
    assert activity.messages == 3 and activity.undated == 1
    # months without messages are in the series, as zeros
    assert activity.monthly() == [("2024-01", 2), ("2024-02", 0), ("2024-03", 1)]


def test_the_picture_is_a_small_png() -> None:
    activity = Activity()
    activity.add(_batch([("user", "text", datetime(2023, 12, 5, 14, tzinfo=UTC))] * 5))
    png = render_png(activity)
    assert png.startswith(PNG_MAGIC) and 1_000 < len(png) < 100 * 1024
    assert render_png(Activity()).startswith(PNG_MAGIC)  # no dated messages: still a picture
