"""The errors an import can end with.

Every message is written for the person whose import failed: it says what is wrong with the file
and, where it helps, where (a byte offset, a member name, a storage status), and it never quotes
the export's content, since that is the person's own conversations.
"""

from __future__ import annotations


class ExportError(Exception):
    """Base class: the export cannot be imported. ``str(error)`` is safe to show the person."""

    #: Short machine-readable reason, used in metadata, logs and test assertions.
    reason = "export_error"


class NotAnExportError(ExportError):
    """The file is readable but is not a ChatGPT or Claude export."""

    reason = "not_an_export"


class EmptyExportError(ExportError):
    """The export holds no conversations at all."""

    reason = "empty_export"


class InvalidJSONError(ExportError):
    """The JSON is malformed at some byte."""

    reason = "invalid_json"

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class TruncatedExportError(InvalidJSONError):
    """The JSON ends before it is complete (an interrupted upload or download)."""

    reason = "truncated"


class EncodingError(InvalidJSONError):
    """The JSON is not valid UTF-8."""

    reason = "invalid_utf8"


class OversizedValueError(ExportError):
    """One conversation node (or one value) is larger than the reader accepts."""

    reason = "oversized_value"


class StructureLimitError(ExportError):
    """The JSON's structure is far outside any export's: nested too deep, key paths too long,
    or too many objects in one message (shapes that cost the parser far more than their size)."""

    reason = "too_complex"

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class UnsafeArchiveError(ExportError):
    """The archive looks hostile: a ZIP bomb, or member paths that escape the archive."""

    reason = "unsafe_archive"


class StorageError(ExportError):
    """The export could not be read from storage (missing object, denied, network)."""

    reason = "storage_error"


class ConfigurationError(ValueError):
    """A setting (an environment variable, a URL, a command-line value) cannot be used.

    The message names the setting and what is expected; it never repeats a secret.
    """
