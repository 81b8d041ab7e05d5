"""Checkpoints outlive their topology: 2 gloo ranks train and save under every backend x ZeRO stage x
expert-parallel size that trains here, then one process consolidates each checkpoint and must compute the
logits the sharded engine computed."""

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from ds_parrots.checkpoints.load import consolidated_state, load_model, sidecar_path
from ds_parrots.errors import ConfigError
from helpers import REPO, cpu_env, run_dist_script

pytestmark = [pytest.mark.slow]

CASES = [
    "dense-z0-ep1",
    "dense-z1-ep1",
    "dense-z2-ep1",
    "dense-z3-ep1",
    "autoep-z0-ep2",
    "autoep-z1-ep1",
    "autoep-z2-ep2",
    "autoep-z3-ep1",
    "autoep-z3-ep2",
    "native-z0-ep2",
    "native-z1-ep1",
    "native-z2-ep2",
]
BF16_CASES = ["autoep-z1-ep2-bf16", "autoep-z3-ep2-bf16", "native-z2-ep2-bf16"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpts")
    run_dist_script("save_checkpoints.py", [str(out), *CASES, *BF16_CASES], timeout=600)
    return out


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "ds_parrots.cli", *args],
        cwd=REPO,
        env=cpu_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def logits_error(model, run_dir):
    ref = torch.load(run_dir / "reference_logits.pt", weights_only=True)
    with torch.no_grad():
        out = model(ref["input_ids"]).float()
    return (out - ref["logits"]).abs().max().item(), ref["logits"].abs().max().item()


@pytest.mark.multirank
@pytest.mark.parametrize("case", CASES)
def test_one_process_reproduces_the_sharded_logits(saved, case):
    model, meta = load_model(saved / case)
    err, scale = logits_error(model, saved / case)
    assert err < 1e-5 * max(1.0, scale), (case, err)
    assert meta["step"] == 2


@pytest.mark.multirank
@pytest.mark.parametrize("case", BF16_CASES)
def test_bf16_runs_consolidate_their_fp32_master_weights(saved, case):
    state, _ = consolidated_state(saved / case)
    w = state["model.layers.0.mlp.experts.gate_up_proj"]
    # Master weights carry more precision than bf16 can hold: the module's bf16 copy would round-trip.
    assert w.dtype == torch.float32 and not torch.equal(w, w.bfloat16().float())
    model, _ = load_model(saved / case, dtype=torch.bfloat16)
    err, _ = logits_error(model, saved / case)
    assert err <= 2 * 2**-8  # 2 bf16 ulps at this scale; a misplaced expert costs ~0.03


@pytest.mark.multirank
def test_cli_writes_safetensors_and_sidecar_that_load_alone(saved, tmp_path):
    out = tmp_path / "model.safetensors"
    proc = cli("consolidate", str(saved / "autoep-z3-ep2"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["model"]["num_experts"] == 8 and meta["moe_backend"] == "autoep" and meta["ep_size"] == 2
    assert meta["params"]["total"] > meta["params"]["active"]
    model, _ = load_model(out)
    err, scale = logits_error(model, saved / "autoep-z3-ep2")
    assert err < 1e-5 * max(1.0, scale)
    again = cli("consolidate", str(saved / "autoep-z3-ep2"), "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr


def test_cli_errors_are_one_line(tmp_path):
    proc = cli("consolidate", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.safetensors"))
    assert proc.returncode == 2 and "no such checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="sidecar"):
        consolidated_state(tmp_path / "x.safetensors")


@pytest.mark.multirank
def test_checkpoint_of_another_architecture_is_refused(saved, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(saved / "dense-z2-ep1", run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["d_model"] = 64  # the weights are d_model 32
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="does not match the model configuration"):
        consolidated_state(run)


@pytest.mark.multirank
def test_loading_never_runs_code_from_a_checkpoint(saved, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(saved / "dense-z0-ep1", run)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    states = run / "checkpoints" / "step00000002" / "mp_rank_00_model_states.pt"
    with open(states, "wb") as f:
        pickle.dump({"module": Exploit()}, f)
    with pytest.raises(ConfigError, match="mp_rank_00_model_states.pt is .* bytes"):
        consolidated_state(run)  # the file no longer matches the completion marker's record of it
    # Whoever can plant a file can rewrite the marker too: then weights_only loading is what refuses it.
    from ds_parrots.training.checkpoint_manifest import COMPLETE_FILE, digest

    complete = states.parent / COMPLETE_FILE
    body = json.loads(complete.read_text())
    body["checksums"][states.name] = digest(states)
    complete.write_text(json.dumps(body))
    with pytest.raises(ConfigError, match="weights_only"):
        consolidated_state(run)
    assert not marker.exists()
