"""``user_profiles`` through Supabase's REST API (``https://<project>.supabase.co``).

The table must already exist there: ``deploy/user_profiles.sql`` is its migration.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.mirror.columns import (
    TABLE,
    normalize_fields,
    normalize_user_id,
    row_from_mapping,
)
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError, redact


class SupabaseRestProfileStore(ProfileStore):
    """``user_profiles`` through Supabase's REST API (PostgREST) with the service role key.

    The service role key bypasses row level security. The table and its columns come from the
    migration ``deploy/user_profiles.sql``, so :meth:`ensure_schema` does nothing here.
    """

    backend = "Supabase REST"

    def __init__(
        self,
        url: str,
        service_role_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not service_role_key:
            raise ValueError("the Supabase REST profile store needs a service role key")
        base = url.rstrip("/")
        base = base.removesuffix("/rest/v1")
        self.url = base
        self._key = service_role_key
        self._client = httpx.Client(
            base_url=f"{base}/rest/v1",
            headers={"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"},
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_url(
        cls, url: str, *, service_role_key: str | None = None, timeout: float = 10.0
    ) -> SupabaseRestProfileStore:
        """Any ``http(s)://`` URL (a local Supabase too); ``service_role_key`` is required."""
        if not service_role_key:
            raise ConfigurationError(
                "SOULPRINT_PROFILES_URL: a Supabase REST URL needs the service role key "
                "(SUPABASE_SERVICE_ROLE_KEY)"
            )
        return cls(url, service_role_key, timeout=timeout)

    def _request(self, operation: str, method: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, f"/{TABLE}", **kwargs)
        except httpx.HTTPError as error:
            message = redact(f"{type(error).__name__}: {error}", (self._key,))
            raise ProfileStoreError(
                f"Supabase REST {operation} of {TABLE} failed: {message}"
            ) from error
        if response.status_code >= 400:
            raise ProfileStoreError(
                f"Supabase REST {operation} of {TABLE} failed: HTTP {response.status_code}"
                + _postgrest_reason(response, self._key)
            )
        return response

    def ensure_schema(self) -> None:
        """Nothing to do: run ``deploy/user_profiles.sql`` on the project instead."""

    def upsert(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """PATCH the user's row; if there was none, ``POST ?on_conflict=user_id`` (merge).

        A PATCH on a missing row silently changes nothing, hence the insert after it; the
        PATCH comes first because PostgREST's upsert is an INSERT, which the app's table
        rejects when it has NOT NULL columns of its own (as the Postgres backend does too).
        PostgREST writes only the columns in the body.
        """
        user_id = normalize_user_id(user_id)
        values = normalize_fields(user_id, fields)
        body: dict[str, Any] = {
            column: value.isoformat() if isinstance(value, datetime) else value
            for column, value in values.items()
        }
        updated = self._request(
            "upsert",
            "PATCH",
            params={"user_id": f"eq.{user_id}", "select": "user_id"},
            headers={"Prefer": "return=representation"},
            json=body,
        )
        if updated.json():
            return
        self._request(
            "upsert",
            "POST",
            params={"on_conflict": "user_id"},
            headers={"Prefer": "resolution=merge-duplicates,return=minimal"},
            json=[{"user_id": user_id, **body}],
        )

    def get(self, user_id: str) -> dict[str, Any] | None:
        """``GET /user_profiles?user_id=eq.<id>&select=*``: the row, or None."""
        user_id = normalize_user_id(user_id)
        response = self._request("read", "GET", params={"user_id": f"eq.{user_id}", "select": "*"})
        try:
            rows = response.json()
        except ValueError as error:
            raise ProfileStoreError(
                f"Supabase REST read of {TABLE} failed: the response is not JSON"
            ) from error
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ProfileStoreError(
                f"Supabase REST read of {TABLE} failed: expected a JSON array of rows"
            )
        if not rows:
            return None
        return row_from_mapping(rows[0])

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def _postgrest_reason(response: httpx.Response, key: str) -> str:
    """PostgREST's error code and message (never its ``details``, which can quote the row)."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    parts = [str(payload[k]) for k in ("code", "message") if payload.get(k)]
    if not parts:
        return ""
    return " (" + redact(": ".join(parts), (key,))[:300] + ")"
