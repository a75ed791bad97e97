"""The person's activity as counts only: their messages by weekday and hour, and by month,
and a PNG of both (a heatmap and a monthly series) for the run's metadata.

Only the ``role``, ``content_type`` and ``created_at`` columns are read; nothing the person
wrote reaches the counts or the picture. Times are UTC, as everywhere in the rows.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from soulprint_pipeline.export.rows import SIGNAL_CONTENT_TYPES, UTC_MICROS

#: The columns :meth:`Activity.add` reads.
COLUMNS = ["role", "content_type", "created_at"]
WEEKDAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: The version of :func:`render_png`'s drawing: bump it when the picture's look changes, so
#: pictures kept from earlier soulprints of the same rows are drawn again.
PICTURE_VERSION = 1


def _strings(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


class Activity:
    """The person's own messages counted by (weekday, hour) and by month, UTC."""

    def __init__(self) -> None:
        self.grid = [[0] * 24 for _ in range(7)]  # [weekday, Monday first][hour]
        self.months: Counter[str] = Counter()  # "YYYY-MM" -> messages
        self.undated = 0

    @property
    def messages(self) -> int:
        """Dated messages counted."""
        return sum(map(sum, self.grid))

    def add(self, batch: pa.RecordBatch) -> None:
        """Count the person's messages of one batch (profile signals are not messages)."""
        mine = pc.and_(
            pc.equal(_strings(batch.column("role")), "user"),
            pc.invert(
                pc.is_in(_strings(batch.column("content_type")), pa.array(SIGNAL_CONTENT_TYPES))
            ),
        )
        created = pc.filter(batch.column("created_at"), mine)
        if created.type != UTC_MICROS:
            created = created.cast(UTC_MICROS)
        stamps = pc.drop_null(created)
        self.undated += len(created) - len(stamps)
        if not len(stamps):
            return
        cells = pc.add(pc.multiply(pc.day_of_week(stamps), 24), pc.hour(stamps))
        for entry in pc.value_counts(cells).to_pylist():
            day, hour = divmod(entry["values"], 24)
            self.grid[day][hour] += entry["counts"]
        months = pc.strftime(stamps, format="%Y-%m")
        for entry in pc.value_counts(months).to_pylist():
            self.months[entry["values"]] += entry["counts"]

    def monthly(self) -> list[tuple[str, int]]:
        """Messages per month from the first month to the last, months without any as 0."""
        if not self.months:
            return []
        first, last = min(self.months), max(self.months)
        year, month = map(int, first.split("-"))
        series = []
        while (key := f"{year:04d}-{month:02d}") <= last:
            series.append((key, self.months.get(key, 0)))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return series


def activity_of(batches: Iterable[pa.RecordBatch]) -> Activity:
    """The activity of every batch (read with ``columns=COLUMNS`` to keep the pass cheap)."""
    activity = Activity()
    for batch in batches:
        activity.add(batch)
    return activity


def render_png(activity: Activity, *, dpi: int = 80) -> bytes:
    """The heatmap (weekday x hour) above the monthly series, as PNG bytes: counts and axis
    labels only."""
    # imported here: matplotlib costs a noticeable import, and only this step draws
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.2), dpi=dpi, layout="constrained")
    heat, series = figure.subplots(2, 1, height_ratios=[1.1, 1])
    image = heat.imshow(activity.grid, aspect="auto", cmap="Blues", interpolation="nearest")
    heat.set_yticks(range(7), WEEKDAY_LABELS)
    heat.set_xticks(range(0, 24, 3), [f"{hour:02d}" for hour in range(0, 24, 3)])
    heat.set_xlabel("hour (UTC)")
    heat.set_title(f"Messages by weekday and hour ({activity.messages:,})")
    figure.colorbar(image, ax=heat, label="messages")

    monthly = activity.monthly()
    if monthly:
        labels = [month for month, _ in monthly]
        series.bar(range(len(monthly)), [count for _, count in monthly], color="#3b75af")
        step = max(1, len(labels) // 12)
        series.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right")
    else:
        series.text(0.5, 0.5, "no dated messages", ha="center", va="center")
        series.set_xticks([])
    series.set_ylabel("messages")
    series.set_title("Messages per month")

    buffer = io.BytesIO()
    # no metadata chunks beyond the defaults: the file is counts and labels, nothing else
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
