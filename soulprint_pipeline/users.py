"""User ids: the partition key of every asset, validated before any path or query uses it."""

from __future__ import annotations

import re

from soulprint_pipeline.errors import UserSafeError

_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class InvalidUserIdError(UserSafeError, ValueError):
    """A user id that is not UUID-like (letters, digits, ``-`` and ``_``, at most 128)."""


def validate_user_id(user_id: str) -> str:
    """Return ``user_id`` if it is safe in paths and queries, else raise InvalidUserIdError."""
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        raise InvalidUserIdError(
            f"Invalid user id {user_id!r}: use letters, digits, '-' and '_' only (at most 128), "
            "with no dots, slashes or commas."
        )
    return user_id
