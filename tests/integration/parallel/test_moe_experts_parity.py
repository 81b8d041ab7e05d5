"""Our paths inside DeepSpeed's MoE layers (AutoEP's plain-sort token path with grouped-GEMM experts, the
trimmed experts inside deepspeed.moe) train like DeepSpeed's own (AutoEP: its per-expert loop), on 1 and 2
ranks through the launcher."""

import json

import pytest
import torch

from helpers import run_dist_script

pytestmark = [pytest.mark.slow]

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


@pytest.mark.parametrize(
    "backend,nproc,zero,ep",
    [
        ("autoep", 1, 0, 1),
        pytest.param("autoep", 2, 3, 2, marks=pytest.mark.multirank),
        pytest.param("native", 2, 2, 2, marks=pytest.mark.multirank),
    ],
)
def test_our_experts_inside_deepspeeds_layers_train_like_deepspeeds(tmp_path, backend, nproc, zero, ep):
    """autoep: the plain-sort layer with grouped-GEMM experts against AutoEP's layer with its per-expert loop;
    native: the trimmed experts inside deepspeed.moe's MoE."""
    out = tmp_path / "parity.json"
    run_dist_script(
        "moe_experts_parity.py",
        ["--backend", backend, "--zero", str(zero), "--ep", str(ep), str(out)],
        nproc=nproc,
        timeout=400,
    )
    theirs_class, ours_name, ours_class, expert_weight = {
        "autoep": (
            "AutoEPMoELayer/GroupedExperts",
            "grouped",
            "PlainSortAutoEPMoELayer/SafeGroupedExperts",
            ".experts.w1",
        ),
        "native": ("Experts", "trimmed", "TrimmedExperts", ".deepspeed_experts.0.gate_proj"),
    }[backend]
    for rank in json.loads(out.read_text()):
        ds, ours = rank["deepspeed"], rank[ours_name]
        # The swap happened in every layer, and only when asked for.
        assert ds["classes"] == [theirs_class] and ours["classes"] == [ours_class]
        torch.testing.assert_close(
            torch.tensor(ours["losses"]), torch.tensor(ds["losses"]), rtol=1e-5, atol=1e-6
        )
        assert sorted(ours["grads"]) == sorted(ds["grads"]) and any(expert_weight in n for n in ds["grads"])
        for name, g in ds["grads"].items():
            torch.testing.assert_close(
                torch.tensor(ours["grads"][name]), torch.tensor(g), rtol=1e-4, atol=1e-6
            )
