"""A local S3 server speaking the real protocol (moto's server mode), and a bucket on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

S3_BUCKET = "user-imports"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, Any]]:
    """A local S3 server speaking the real protocol; yields s3fs storage options for it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "key": "test-access-key",
        "secret": "test-secret-key",
        "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "eu-west-1"},
    }
    try:
        yield options
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: dict[str, Any]) -> Iterator[Any]:
    """An s3fs filesystem on the local server with an empty ``user-imports`` bucket."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server)
    if fs.exists(S3_BUCKET):
        fs.rm(S3_BUCKET, recursive=True)
    fs.mkdir(S3_BUCKET)
    fs.invalidate_cache()
    yield fs
