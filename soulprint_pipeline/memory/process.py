"""What the memory step does to its own process so that its peak RSS stays low.

The step's peak is mostly what it loads (pyarrow, LanceDB's library) and what allocators keep
after it is freed, not what it holds; each helper here is measured in the README's memory
figures:

* :func:`tune_malloc`: every thread shares glibc's main arena (LanceDB's threads would each
  keep one of their own), and blocks of 128 KiB or more are mapped apart and unmapped when
  freed;
* :func:`arrow_system_pool`: Arrow's buffers come from glibc's malloc too, not mimalloc
  (pyarrow's default, which keeps freed pages for reuse);
* :func:`arrow_without_pandas`: pyarrow's first array from Python objects, and LanceDB's import
  of ``pyarrow.dataset``, would import pandas (about 30 MB) only to ask whether an object is a
  pandas one; the step never hands them one;
* :func:`release_freed_memory`: glibc keeps freed pages in its heap until told to return them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.abc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters
_M_ARENA_MAX = -8
#: Blocks from this size up are mapped apart (glibc's default, which it raises as it goes).
MMAP_THRESHOLD = 128 * 1024


@cache
def _glibc() -> Any | None:
    """glibc, or ``None`` where the C library is another (the helpers are then no-ops)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def tune_malloc() -> None:
    """Keep glibc's heap small; call it before LanceDB starts its threads (the arena limit
    binds only threads that have not allocated yet).

    * One arena: LanceDB's Rust threads allocate through glibc, which gives each new thread an
      arena of its own and keeps what they free there.
    * A fixed mmap threshold: glibc maps blocks of 128 KiB and more apart and unmaps them when
      freed, but raises the threshold (up to 32 MB) each time such a block is freed, so the
      step's buffers of a few MB (Parquet row groups, staged batches) soon stay in the heap;
      setting it explicitly turns that off.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, 1)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"pandas is not loaded here: {name}", name=name)
        return None


def arrow_without_pandas() -> None:
    """Settle pyarrow's lazy question "is pandas there?" as no, without importing it.

    pyarrow asks it once per process, the first time it converts Python objects (``pa.array``
    of a list, a scalar in ``pyarrow.dataset``'s import): answered no, it never imports pandas
    for that again. Anything that really converts to or from pandas (``to_pandas()``) still
    imports it, as pyarrow retries the import when it is required. A no-op once pandas is
    loaded (an earlier step of the same process needed it).
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])  # the first conversion from Python objects asks the question
    finally:
        sys.meta_path.remove(finder)


@contextmanager
def arrow_system_pool() -> Iterator[None]:
    """Arrow allocates from glibc's malloc inside the block (so :func:`tune_malloc` and
    :func:`release_freed_memory` apply to its buffers too), and from its default pool again
    after (each buffer is freed by the pool it came from)."""
    import pyarrow as pa

    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def release_freed_memory() -> None:
    """Return the pages glibc's heap holds free to the system (``malloc_trim``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
