"""--train.activation-checkpointing through the DeepSpeed engine on 2 real ranks: same training."""

import json

import pytest

from helpers import run_dist_script

pytestmark = [pytest.mark.slow, pytest.mark.multirank]


def test_checkpointed_training_matches_plain_under_zero3_dense_and_autoep(tmp_path):
    out = tmp_path / "ac.json"
    run_dist_script("activation_checkpointing.py", [str(out)])
    for rank in json.loads(out.read_text()):
        for case, runs in rank.items():
            plain, ckpt = runs["plain"], runs["checkpointed"]
            # 3 steps x 2 micro-batches: one forward each, plus one recomputation each when checkpointed.
            assert plain["layer0_forwards"] == 6 and ckpt["layer0_forwards"] == 12, case
            for a, b in zip(plain["steps"], ckpt["steps"]):
                assert a.keys() == b.keys()
                for k in a:  # aux / z losses too: the recomputed router logits must not leak into them
                    assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), (case, k)
