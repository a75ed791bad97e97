"""What the memory step does to its own process so that its peak RSS stays low.

The step's peak is mostly what it loads (pyarrow, LanceDB's library) and what allocators keep
after it is freed, not what it holds; each helper here is measured in the README's memory
figures:

* :func:`one_malloc_arena`: every thread shares glibc's main arena (LanceDB's threads would
  each keep one of their own);
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
from functools import cache
from typing import Any

_M_ARENA_MAX = -8  # glibc's mallopt parameter


@cache
def _glibc() -> Any | None:
    """glibc, or ``None`` where the C library is another (the helpers are then no-ops)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def one_malloc_arena() -> None:
    """Let every thread share glibc's main malloc arena; call it before LanceDB starts its
    threads (the limit binds only threads that have not allocated yet).

    LanceDB's Rust threads allocate through glibc, which gives each new thread an arena of its
    own and keeps what they free there: with one arena, the memory step on a 1 GB export peaked
    at 288 MB instead of 300 (no slower).
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, 1)


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


def release_freed_memory() -> None:
    """Return the pages glibc's heap holds free to the system (``malloc_trim``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
