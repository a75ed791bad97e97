"""Two Dagster import runs of one user at once, on one instance and one lake (as two runs
started by different means would be: the run queue's one-run-per-user limit does not see an
in-process run). Each trial imports two different uploads together; the lake must end as one
upload's chain (the stored export's sha256 is the one the current rows were parsed from, and
the current soulprint was made from those rows), and nothing either run needed may vanish.

Before versions recorded their inputs and replaced versions were kept, one run failed with
``FileNotFoundError`` on a Parquet part the other's commit deleted, and the lake could end with
one upload's raw copy and the other's rows.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from soulprint_pipeline.lake.store import Lake
from soulprint_pipeline.lake.verify import chain_problems
from soulprint_pipeline.mirror.agreement import disagreements
from soulprint_pipeline_tests.support.env import Env
from soulprint_pipeline_tests.support.exports import chatgpt_export_bytes

pytestmark = pytest.mark.chaos

TRIALS = 4


def _import_together(env: Env, user_id: str, uploads: list[Path]) -> list[bool]:
    start = threading.Barrier(len(uploads))
    results: list[bool] = [False] * len(uploads)

    def run(index: int) -> None:
        start.wait()
        results[index] = env.run_import(user_id, uploads[index]).success

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(uploads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_imports_of_one_user_at_once_leave_one_uploads_chain(env: Env) -> None:
    outcomes: Counter[str] = Counter()
    lake = Lake(str(env.lake))
    for trial in range(TRIALS):
        user_id = f"twice-{trial}"
        uploads = [
            env.upload(user_id, "a.json", chatgpt_export_bytes(40)),
            env.upload(user_id, "b.json", chatgpt_export_bytes(70)),
        ]
        succeeded = _import_together(env, user_id, uploads)
        problems = chain_problems(lake, user_id)
        if not all(succeeded) or any("gone" in problem for problem in problems):
            outcomes["lost"] += 1
        elif problems:
            outcomes["mixed"] += 1
        else:
            outcomes["ok"] += 1
            raw = env.current("raw_export", user_id)
            rows = env.current("conversation_batches", user_id)
            soulprint = lake.read_json(env.current("quick_pass_soulprint", user_id)["file"])
            # the stored export is one of the two uploads, byte for byte, and the rows are its
            assert raw["sha256"] == rows["source_sha256"]
            assert raw["bytes"] in {path.stat().st_size for path in uploads}
            assert rows["rows"] == (80 if raw["bytes"] == uploads[0].stat().st_size else 140)
            # the app shows what the lake holds: the chain's soulprint and its totals
            row = env.row(user_id)
            assert not disagreements(row, soulprint)
            assert row["total_messages"] == rows["rows"]
    print(f"{TRIALS} trials of two import runs of one user at once: {dict(outcomes)}")
    assert outcomes == Counter(ok=TRIALS)
