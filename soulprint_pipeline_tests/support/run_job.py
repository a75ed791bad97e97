"""The import job of one user, executed in this process on the instance of ``DAGSTER_HOME``
with the resources of the environment (``definitions.py``), as a run worker executes it: no
import command, so no per-user lock. A test starts two at once to race two runs of one user.

    python run_job.py USER EXPORT READY GO [DELAY]

Once Dagster and the code location are loaded it creates the file READY, waits for the file
GO, sleeps DELAY seconds, then runs the job; it prints the run id and exits 0 if the run
succeeded, 1 if not. It imports only the package (not the tests'), so it also runs against
an older checkout of the package put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(user_id: str, export: str, ready: str, go: str, delay: float = 0.0) -> int:
    """Run the import job for ``user_id`` on ``export`` once ``go`` exists; 0 on success."""
    import dagster as dg

    from soulprint_pipeline.definitions import defs
    from soulprint_pipeline.defs.partitions import UPLOAD_TAG

    job = defs.resolve_job_def("import_user")
    with dg.DagsterInstance.get() as instance:
        Path(ready).touch()
        deadline = time.monotonic() + 600  # the other process may load slowly on a busy machine
        while not Path(go).exists():
            if time.monotonic() > deadline:
                raise SystemExit("never told to go")
            time.sleep(0.01)
        time.sleep(delay)
        result = job.execute_in_process(
            instance=instance,
            partition_key=user_id,
            tags={UPLOAD_TAG: export},
            raise_on_error=False,
        )
    print(result.run_id)
    return 0 if result.success else 1


if __name__ == "__main__":
    user, export_url, ready_file, go_file, *rest = sys.argv[1:]
    sys.exit(main(user, export_url, ready_file, go_file, float(rest[0]) if rest else 0.0))
