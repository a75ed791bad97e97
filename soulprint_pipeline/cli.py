"""The ``soulprint-pipeline`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time

from soulprint_pipeline.errors import ExportError
from soulprint_pipeline.parquet_parts import PartWriter
from soulprint_pipeline.reader import ExportReader
from soulprint_pipeline.rows import DICTIONARY_COLUMNS
from soulprint_pipeline.storage import MiB, ReadLimits


def _limits(args: argparse.Namespace) -> ReadLimits:
    return ReadLimits(
        max_uncompressed_bytes=int(args.max_uncompressed_gb * 1024 * MiB),
        max_compression_ratio=args.max_compression_ratio,
        max_node_bytes=int(args.max_node_mb * MiB),
    )


def parse_command(args: argparse.Namespace) -> int:
    """Parse one export into Parquet parts and print a one-line JSON summary."""
    started = time.perf_counter()
    reader = ExportReader(args.export_url, limits=_limits(args))
    with PartWriter(args.out, dictionary_columns=DICTIONARY_COLUMNS) as writer:
        writer.write_all(reader.batches())
    seconds = time.perf_counter() - started
    summary = reader.stats.as_dict()
    summary.update(
        parts=len(writer.paths),
        parquet_bytes=writer.bytes_written,
        seconds=round(seconds, 3),
        mb_per_s=round(reader.stats.bytes_read / MiB / seconds, 1) if seconds else None,
    )
    print(json.dumps(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``soulprint-pipeline``."""
    parser = argparse.ArgumentParser(prog="soulprint-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    parse = commands.add_parser(
        "parse", help="stream an export (any fsspec URL) into Parquet parts of message rows"
    )
    parse.add_argument("export_url", help="path or fsspec URL of a ChatGPT or Claude export")
    parse.add_argument("--out", required=True, help="directory (path or fsspec URL) for parts")
    defaults = ReadLimits()
    parse.add_argument(
        "--max-node-mb",
        type=float,
        default=defaults.max_node_bytes / MiB,
        help="largest single conversation node accepted (default: %(default)s)",
    )
    parse.add_argument(
        "--max-uncompressed-gb",
        type=float,
        default=defaults.max_uncompressed_bytes / 1024 / MiB,
        help="cap on decompressed size (default: %(default)s)",
    )
    parse.add_argument(
        "--max-compression-ratio",
        type=float,
        default=defaults.max_compression_ratio,
        help="cap on decompression ratio (default: %(default)s)",
    )
    parse.set_defaults(handler=parse_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: a bad export exits with status 2 and a one-line message, no traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ExportError as error:
        print(f"soulprint-pipeline: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
