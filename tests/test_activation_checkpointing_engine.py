"""--train.activation-checkpointing through the DeepSpeed engine on 2 real ranks: same training."""

import json
import subprocess
import sys

import pytest

from helpers import REPO, cpu_env, free_port


def test_checkpointed_training_matches_plain_under_zero3_dense_and_autoep(tmp_path):
    out = tmp_path / "ac.json"
    script = REPO / "tests" / "dist_scripts" / "activation_checkpointing.py"
    env = cpu_env()
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port",
                           str(free_port()), str(script), str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in json.loads(out.read_text()):
        for case, runs in rank.items():
            plain, ckpt = runs["plain"], runs["checkpointed"]
            # 3 steps x 2 micro-batches: one forward each, plus one recomputation each when checkpointed.
            assert plain["layer0_forwards"] == 6 and ckpt["layer0_forwards"] == 12, case
            for a, b in zip(plain["steps"], ckpt["steps"]):
                assert a.keys() == b.keys()
                for k in a:  # aux / z losses too: the recomputed router logits must not leak into them
                    assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), (case, k)
