"""run_benchmarks / run_gap on 2 gloo ranks (2 processes) score what one process scores."""

import json
import os
import subprocess
import sys

import pytest

from ds_parrots.parallel.process_group import free_port
from ds_parrots_eval.benchmarks.runner import run_benchmarks
from ds_parrots_eval.gap import run_gap
from helpers import REPO
from scripted_bench import FEW_SHOT, TASKS, scripted_lm, write_fixtures

pytestmark = [pytest.mark.slow, pytest.mark.multirank]


@pytest.fixture
def bench(tmp_path):
    return write_fixtures(tmp_path / "bench")


CHILD = """
import json, sys
from pathlib import Path
import torch.distributed as dist
from scripted_bench import FEW_SHOT, TASKS, scripted_lm
from ds_parrots_eval.benchmarks.runner import run_benchmarks
from ds_parrots_eval.gap import run_gap

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
bench, out = Path(sys.argv[1]), Path(sys.argv[2])
result = {"bench": run_benchmarks(scripted_lm(), TASKS, bench, few_shot=FEW_SHOT, rank=rank, world_size=world,
                                  progress=False, batch_size=2),
          "gap": run_gap(scripted_lm(right_on_test=False), bench, rank=rank, world_size=world, progress=False)}
(out / f"rank{rank}.json").write_text(json.dumps(result))
dist.destroy_process_group()
"""


def test_two_ranks_equal_one_process(bench, tmp_path):
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        WORLD_SIZE="2",
        PYTHONPATH=os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(bench), str(tmp_path)],
            env=dict(env, RANK=str(r)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)
    single = {
        "bench": run_benchmarks(scripted_lm(), TASKS, bench, few_shot=FEW_SHOT, progress=False),
        "gap": run_gap(scripted_lm(right_on_test=False), bench, progress=False),
    }
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1] == json.loads(json.dumps(single))
