"""Which backend a ``SOULPRINT_PROFILES_URL`` names: a registry keyed by URL scheme.

As in fsspec's ``known_implementations``, the built-in backends are named by import path and
imported only when a URL of theirs is opened (the SQLite default never loads psycopg); another
backend is added with :func:`register_profile_store`.
"""

from __future__ import annotations

import importlib

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.mirror.store import ProfileStore

_POSTGRES = "soulprint_pipeline.mirror.postgres:PostgresProfileStore"
_SUPABASE = "soulprint_pipeline.mirror.supabase:SupabaseRestProfileStore"

#: scheme -> ``"module:Class"`` of the built-in backends.
KNOWN_BACKENDS: dict[str, str] = {
    "sqlite": "soulprint_pipeline.mirror.sqlite:SQLiteProfileStore",
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    "https": _SUPABASE,
    "http": _SUPABASE,
}

_registered: dict[str, type[ProfileStore]] = {}


def register_profile_store(
    scheme: str, store: type[ProfileStore], *, clobber: bool = False
) -> None:
    """Open URLs of ``scheme`` with ``store.from_url``; an existing scheme needs ``clobber``."""
    scheme = scheme.lower()
    if not clobber and (scheme in _registered or scheme in KNOWN_BACKENDS):
        raise ValueError(f"a profile store is already registered for {scheme}://")
    _registered[scheme] = store


def profile_store_class(scheme: str) -> type[ProfileStore] | None:
    """The backend registered for ``scheme``, importing a built-in one on first use."""
    scheme = scheme.lower()
    if scheme not in _registered and scheme in KNOWN_BACKENDS:
        module, name = KNOWN_BACKENDS[scheme].split(":")
        _registered[scheme] = getattr(importlib.import_module(module), name)
    return _registered.get(scheme)


def open_profile_store(
    url: str, *, service_role_key: str | None = None, timeout: float = 10.0
) -> ProfileStore:
    """Open the ``user_profiles`` backend named by ``url`` (nothing is created or checked yet).

    - ``sqlite:///relative/path.sqlite3`` or ``sqlite:////absolute/path.sqlite3``: a SQLite file
      (its parent folder is created).
    - ``postgresql://...`` or ``postgres://...``: PostgreSQL through psycopg 3; connects lazily,
      with ``timeout`` as the connect timeout.
    - ``https://<project>.supabase.co`` (any ``http(s)://`` URL, e.g. a local Supabase): Supabase
      REST over httpx with ``service_role_key``, which is then required.

    Any other URL, or a missing key, is a
    :class:`~soulprint_pipeline.errors.ConfigurationError`. Call
    :meth:`ProfileStore.ensure_schema` before use.
    """
    scheme = url.split(":", 1)[0] if ":" in url else ""
    store = profile_store_class(scheme) if scheme else None
    if store is None:
        shown = url.split("://", 1)[0] + "://..." if "://" in url else "(no scheme)"
        raise ConfigurationError(
            f"SOULPRINT_PROFILES_URL: unsupported URL {shown}: expected sqlite:///..., "
            "postgresql://... or https://<project>.supabase.co"
        )
    return store.from_url(url, service_role_key=service_role_key, timeout=timeout)
