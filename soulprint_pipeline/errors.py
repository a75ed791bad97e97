"""The errors an import can end with.

Every message is written for the person whose import failed: it says what is wrong with the file
and, where it helps, where (a byte offset, a member name, a storage status), and it never quotes
the export's content, since that is the person's own conversations.
"""

from __future__ import annotations

import importlib
import re
from typing import Any


class UserSafeError(Exception):
    """An error whose message is written for the person whose import failed.

    ``str(error)`` may be shown to them, unless the class sets ``fixed_message``: then only that
    is (the mirror's errors name backends and statuses, for the logs, not for the person).
    """

    fixed_message: str | None = None


class ExportError(UserSafeError):
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


class ImportInProgressError(UserSafeError):
    """Another import of the same user is running: two at once would race in the lake."""


class ConfigurationError(UserSafeError, ValueError):
    """A setting (an environment variable, a URL, a command-line value) cannot be used.

    The message names the setting and what is expected; it never repeats a secret.
    """


def message_for_person(error: Any) -> str:
    """What the person is told about a failed import: specific, and never their own text.

    ``error`` is a live exception, or a run's recorded one (Dagster's ``SerializableErrorInfo``,
    read by the run-failure sensor). Its chain (Dagster's wrappers, ``raise ... from``, the
    error being handled) is searched for a :class:`UserSafeError`; any other error is named
    only by its type, since its message may quote data.
    """
    link = error
    while link is not None:
        safe = _safe_message(link)
        if safe is not None:
            return safe
        if isinstance(link, BaseException):
            link = link.__cause__ or link.__context__
        else:
            link = link.cause or link.context
    return f"The import failed unexpectedly ({_type_name(error)}); the team has been told."


#: Dagster's error for a blocking asset check that failed after its asset was stored, matched
#: by name (the library imports no Dagster). Its message lists ``asset: check,check`` lines.
_CHECK_FAILED = "DagsterAssetCheckFailedError"
_CHECK_LINE = re.compile(r"^([A-Za-z0-9_/]+): ([A-Za-z0-9_,]+)$")


def _failed_checks(link: Any) -> str | None:
    """The person's message for a failed blocking asset check, naming the checks."""
    if isinstance(link, BaseException):
        name, text = type(link).__name__, str(link)
    else:
        name, text = link.cls_name, str(link.message)
    if name != _CHECK_FAILED:
        return None
    checks = [
        f"{match[2].replace(',', ', ')} on {match[1]}"
        for match in map(_CHECK_LINE.match, text.splitlines())
        if match
    ]
    named = f" ({'; '.join(checks)})" if checks else ""
    return (
        f"The import stopped at a quality check of its result{named}: nothing past it reached "
        "the app. The team has been told."
    )


def _safe_message(link: Any) -> str | None:
    checks = _failed_checks(link)
    if checks is not None:
        return checks
    if isinstance(link, BaseException):
        if isinstance(link, UserSafeError):
            return link.fixed_message or str(link)
        return None
    # recorded: "soulprint_pipeline.errors.TruncatedExportError: The export is cut short..."
    qualified, _, text = str(link.message).partition(": ")
    module, _, name = qualified.rpartition(".")
    if not module.startswith("soulprint_pipeline."):
        return None  # never import what a recorded error names outside this package
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):  # recorded by an older version of the code
        return None
    if isinstance(cls, type) and issubclass(cls, UserSafeError):
        return cls.fixed_message or text.strip()
    return None


def _type_name(error: Any) -> str:
    if isinstance(error, BaseException):
        return type(error).__name__
    named = error  # past Dagster's wrappers to the step's own error
    while named.cause is not None and named.cls_name.startswith("Dagster"):
        named = named.cause
    return named.cls_name
