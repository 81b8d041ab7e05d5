import json
import subprocess
import sys

from helpers import REPO, cpu_env, free_port


def test_autoep_zero3_ep2_matches_reference_model(tmp_path):
    out = tmp_path / "parity.json"
    script = REPO / "tests" / "dist_scripts" / "autoep_parity.py"
    env = cpu_env()
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port",
                           str(free_port()), str(script), str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(out.read_text())
    # The swap really happened: the layers that ran are DeepSpeed's, not ours.
    assert set(res["layers"]) == {"AutoEPMoELayer"}
    assert max(res["max_abs_err"]) < 1e-5 * max(1.0, res["scale"])
