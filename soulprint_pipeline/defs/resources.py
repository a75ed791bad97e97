"""Resources, configured from the environment, with embedded defaults under one data folder.

Secrets are ``dg.EnvVar`` (resolved at run time, never baked into the code location) and only
when the variable is set; plain settings are read when definitions load, as
dagster-open-platform does.
"""

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import dagster as dg
from pydantic import PrivateAttr

from soulprint_pipeline.errors import ConfigurationError
from soulprint_pipeline.export.containers import MiB
from soulprint_pipeline.mirror.registry import open_profile_store
from soulprint_pipeline.mirror.store import ProfileStore, ProfileStoreError
from soulprint_pipeline.uploads import Bucket, Upload, upload_at

#: Where the embedded defaults keep everything: uploads, lake, user_profiles.
DATA_DIR = Path(os.getenv("SOULPRINT_DATA_DIR", "data")).absolute()


def int_setting(name: str, default: int, minimum: int = 1) -> int:
    """The whole number in environment variable ``name`` (``default`` when unset)."""
    text = os.getenv(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {text[:40]!r}.") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {value}.")
    return value


def location_setting(name: str, default: Path) -> str:
    """The fsspec URL or path in environment variable ``name`` (``default`` when unset).

    A ``file://`` URL becomes the path it names, percent-escapes decoded (fsspec keeps them, so
    ``file:///srv/my%20lake`` would otherwise be a folder named ``my%20lake``).
    """
    value = os.getenv(name, "").strip() or str(default)
    if value.startswith("file://"):
        return url2pathname(urlsplit(value).path)
    return value


def secret(name: str) -> Any:
    """``dg.EnvVar(name)`` when the variable is set, else ``None`` (the field's default)."""
    return dg.EnvVar(name) if os.getenv(name) else None


class S3Settings(dg.ConfigurableResource):
    """Storage's S3 credentials (Supabase Storage's S3 keys), apart from Bedrock's AWS ones."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None

    def storage_options(self, url: str) -> dict[str, Any]:
        """fsspec options for ``url``: s3fs credentials for ``s3://``, nothing otherwise."""
        if not url.startswith(("s3://", "s3a://")):
            return {}
        client_kwargs: dict[str, Any] = {}
        if self.endpoint_url:
            client_kwargs["endpoint_url"] = self.endpoint_url
        if self.region:
            client_kwargs["region_name"] = self.region
        # s3fs reads ahead 50 MiB by default; 8 MiB keeps a 2 GB read flat in memory
        options: dict[str, Any] = {"client_kwargs": client_kwargs, "default_block_size": 8 * MiB}
        if self.access_key_id:
            options["key"] = self.access_key_id
            options["secret"] = self.secret_access_key
        return options


def s3_settings_from_env() -> S3Settings:
    """S3 settings from ``SOULPRINT_S3_*``."""
    return S3Settings(
        endpoint_url=os.getenv("SOULPRINT_S3_ENDPOINT_URL"),
        access_key_id=secret("SOULPRINT_S3_ACCESS_KEY_ID"),
        secret_access_key=secret("SOULPRINT_S3_SECRET_ACCESS_KEY"),
        region=os.getenv("SOULPRINT_S3_REGION"),
    )


class UploadsResource(dg.ConfigurableResource):
    """The uploads bucket (``SOULPRINT_UPLOADS_URL``): a folder, ``s3://`` or any fsspec URL."""

    url: str
    s3: S3Settings

    def storage_options(self) -> dict[str, Any]:
        """fsspec options for reading uploads."""
        return self.s3.storage_options(self.url)

    @property
    def bucket(self) -> Bucket:
        """The bucket, to list (see uploads.Bucket)."""
        return Bucket(self.url, self.storage_options())

    def upload_at(self, url: str, user_id: str) -> Upload:
        """The upload at ``url`` (any fsspec URL, e.g. from a run tag); a local path inside the
        uploads folder must not be a link to a file outside it (see uploads.upload_at)."""
        return upload_at(url, user_id, self.s3.storage_options(url), root=self.url)

    def list_uploads(self) -> Iterator[tuple[str, Upload]]:
        """Every object in the bucket, as (path relative to the bucket URL, upload)."""
        return self.bucket.list_uploads()

    def uploads_of(self, user_id: str) -> list[Upload]:
        """Every upload under ``{uploads}/{user_id}/``, oldest first."""
        return self.bucket.uploads_of(user_id)

    def latest_upload(self, user_id: str) -> Upload:
        """The newest upload of ``user_id``; a clear error if there is none."""
        return self.bucket.latest_upload(user_id)


class ProfilesResource(dg.ConfigurableResource):
    """The app's ``user_profiles`` (``SOULPRINT_PROFILES_URL``): SQLite, Postgres or Supabase."""

    url: str
    supabase_service_role_key: str | None = None
    _store: ProfileStore | None = PrivateAttr(default=None)
    _schema_ready: bool = PrivateAttr(default=False)

    @property
    def store(self) -> ProfileStore:
        """The open store; its table is created or brought up to date on first use.

        A mirror that is down does not stop an import: the schema check is retried on the next
        use, progress writes are skipped, and only the final status write fails the step.
        """
        if self._store is None:
            self._store = open_profile_store(
                self.url, service_role_key=self.supabase_service_role_key
            )
        if not self._schema_ready:
            try:
                self._store.ensure_schema()
                self._schema_ready = True
            except ProfileStoreError as error:
                logging.getLogger(__name__).warning("user_profiles is unreachable: %s", error)
        return self._store

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
