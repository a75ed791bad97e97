"""The memory step's process settings: pyarrow and LanceDB without pandas, heap trimmed."""

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


def test_arrow_and_lancedb_work_without_importing_pandas_until_asked() -> None:
    found = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    )
    assert json.loads(found.stdout) == {"before": False, "after": True, "sum": 3}
