"""The memory step's process settings: pyarrow and LanceDB without pandas, glibc's malloc."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
from soulprint_pipeline.memory.process import arrow_without_pandas, release_freed_memory
arrow_without_pandas()
import lancedb  # imports pyarrow.dataset, which converts a Python scalar
import pyarrow as pa
pa.array(["a", "b"])
release_freed_memory()
before = "pandas" in sys.modules
frame = pa.table({"n": [1, 2]}).to_pandas()  # pandas when really asked for
print(json.dumps({"before": before, "after": "pandas" in sys.modules, "sum": int(frame.n.sum())}))
"""


_POOLS = """
import json
import pyarrow as pa
from soulprint_pipeline.memory.process import arrow_system_pool, tune_malloc
tune_malloc()
before = pa.default_memory_pool().backend_name
with arrow_system_pool():
    inside = pa.default_memory_pool().backend_name
    kept = pa.array(list(range(100_000)))  # a buffer of glibc's, freed after the pool changes
after = pa.default_memory_pool().backend_name
del kept
print(json.dumps([before, inside, after]))
"""


def _run(probe: str) -> object:
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return json.loads(found.stdout)


def test_arrow_and_lancedb_work_without_importing_pandas_until_asked() -> None:
    assert _run(_PROBE) == {"before": False, "after": True, "sum": 3}


def test_arrow_allocates_from_glibc_inside_the_block_only() -> None:
    before, inside, after = _run(_POOLS)  # type: ignore[misc]
    assert inside == "system"
    assert before == after != "system"
