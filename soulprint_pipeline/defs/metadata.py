"""Standard metadata the UI shows well: a table schema from Arrow, sizes people can read."""

import base64
from typing import Any

import dagster as dg
import pyarrow as pa

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(count: int) -> str:
    """``count`` bytes as people read them: ``"1.3 MiB"``."""
    size = float(count)
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def sized(key: str, count: int) -> dict[str, Any]:
    """``{key: count, key's size: "1.3 MiB"}``: the number stays numeric, so it plots."""
    label = "size" if key == "bytes" else f"{key.removesuffix('_bytes')}_size"
    return {key: count, label: human_size(count)}


def table_schema(schema: pa.Schema) -> dg.TableSchema:
    """An Arrow schema as Dagster's ``dagster/column_schema``."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=str(column.type),
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for column in schema
        ]
    )


def without_credentials(url: str) -> str:
    """``url`` without a user or password (a ``postgresql://`` URL may carry them)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    location, slash, path = rest.partition("/")
    return f"{scheme}://{location.rpartition('@')[2]}{slash}{path}"


#: Largest PNG embedded in the metadata itself; a larger one is only linked by its path.
MAX_EMBEDDED_PNG_BYTES = 100 * 1024


def image_markdown(png: bytes, path: str, alt: str = "activity") -> str:
    """Markdown showing ``png`` in the UI: embedded as a data URI (a ``file://`` path does not
    load in the browser), or, past ``MAX_EMBEDDED_PNG_BYTES``, a line naming its path."""
    if len(png) > MAX_EMBEDDED_PNG_BYTES:
        return f"The picture is too large to embed ({human_size(len(png))}): `{path}`"
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"
