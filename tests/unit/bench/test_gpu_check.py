"""bench/gpu_check.py, everything a CPU can run: argument handling, the model grid and its dense twins, the MFU
arithmetic, ratios and goal verdicts, the bf16-vs-fp32 agreement, the compile choice, the table and JSON, and
the whole pipeline on tiny models (in-process; the shell wrapper in subprocesses, marked slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ds_parrots.models.counting import count_params, flops_per_token
from helpers import RENDEZVOUS_VARS

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))

import gpu_check  # noqa: E402
import gpu_check_report as rep  # noqa: E402
from gpu_check import Measured  # noqa: E402

SECTIONS = ["header", "grid", "goals", "precision", "compile", "notes"]


# ---- arguments ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,says",
    [
        (["--steps", "0"], "--steps=0 must be >= 1"),
        (["--warmup", "-1"], "--warmup=-1 must be >= 0"),
        (["--micro-batch", "x"], "argument --micro-batch: invalid int value: 'x'"),
        (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
        (["--device", "cpu"], "--device cpu runs only with --tiny"),
        (["--budget-s", "inf"], "--budget-s=inf must be a finite number >= 0"),
        (["--peak-tflops", "0"], "--peak-tflops=0.0 must be a finite number > 0"),
        (["--backends", "megablocks"], "argument --backends: invalid choice: 'megablocks'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gpu_check: error: ") and says in err


def test_profile_applies_quick_then_flags(monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    args = gpu_check.parse_args(["--quick", "--steps", "5", "--seq-len", "1024"])
    prof = gpu_check.profile(args)
    assert (prof.warmup, prof.steps, prof.precision_steps, prof.seq_len) == (1, 5, 10, 1024)
    assert (prof.micro_batch, prof.accumulation, prof.n_layers) == (4, 2, 20)
    assert args.out is None
    assert gpu_check.profile(gpu_check.parse_args(["--warmup", "0"])).warmup == 0
    tiny = gpu_check.profile(gpu_check.parse_args(["--device", "cpu", "--tiny"]))
    assert (tiny.seq_len, tiny.n_layers, tiny.steps) == (64, 2, 2)


def test_out_defaults_to_the_out_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.parse_args([]).out == str(tmp_path)
    assert gpu_check.parse_args(["--out", "elsewhere"]).out == "elsewhere"


# ---- the grid -----------------------------------------------------------------------------------------


def test_full_grid_runs_dense_then_each_moe_after_its_twin():
    specs = rep.grid(rep.FULL, ["autoep", "native"])
    assert [(s.label, s.kind) for s in specs] == [
        ("paper-dense-d1024", "dense"),
        ("paper-dense-d2048", "dense"),
        ("dense-twin-d512-ffn1024", "twin"),
        ("paper-moe-d512-e8 autoep", "moe"),
        ("paper-moe-d512-e8 native", "moe"),
        ("paper-moe-d512-e64 autoep", "moe"),
        ("paper-moe-d512-e64 native", "moe"),
        ("dense-twin-d1024-ffn2048", "twin"),
        ("paper-moe-d1024-e8 autoep", "moe"),
        ("paper-moe-d1024-e8 native", "moe"),
        ("paper-moe-d1024-e64 autoep", "moe"),
        ("paper-moe-d1024-e64 native", "moe"),
    ]
    for s in specs:
        assert (s.cfg.n_layers, s.cfg.max_seq_len, s.cfg.vocab_size) == (20, 2048, 32000)
    assert specs[2].twin_of == ["paper-moe-d512-e8", "paper-moe-d512-e64"]
    assert (specs[1].cfg.d_model, specs[1].cfg.n_heads) == (2048, 16)


def test_twin_of_d512_e8_has_twice_the_ffn_and_its_active_parameters():
    specs = {s.label: s for s in rep.grid(rep.FULL, ["autoep"])}
    moe = specs["paper-moe-d512-e8 autoep"]
    twin = specs[moe.twin]
    assert (moe.cfg.d_model, moe.cfg.num_experts, moe.cfg.top_k, moe.cfg.ffn) == (512, 8, 2, 512)
    assert (twin.cfg.d_model, twin.cfg.num_experts, twin.cfg.ffn) == (512, 1, 1024)
    assert (twin.cfg.n_heads, twin.cfg.kv_heads, twin.cfg.n_layers) == (moe.cfg.n_heads, moe.cfg.kv_heads, 20)
    # Equal active parameters but the router (d x E per layer), which the twin does not have.
    moe_n, twin_n = count_params(moe.cfg), count_params(twin.cfg)
    assert moe_n.active - twin_n.active == 512 * 8 * 20
    # The MoE holds the E - k = 6 experts a token does not use on top (3 d x ffn each, per layer), and the router.
    assert moe_n.non_embedding_total - twin_n.non_embedding_total == 20 * (6 * 3 * 512 * 512 + 512 * 8)
    # ... so each token costs the same FLOPs but the router's 6 x d x E per layer.
    diff = flops_per_token(moe.cfg, 2048) - flops_per_token(twin.cfg, 2048)
    assert diff == 6 * 512 * 8 * 20


def test_tiny_grid_lets_the_dense_preset_serve_as_the_twin():
    specs = rep.grid(rep.TINY, ["autoep", "native"])
    assert [(s.label, s.kind) for s in specs] == [
        ("tiny-dense", "dense"),
        ("tiny-moe autoep", "moe"),
        ("tiny-moe native", "moe"),
    ]
    assert specs[0].twin_of == ["tiny-moe"] and specs[1].twin == "tiny-dense"
    assert [s.label for s in rep.precision_specs(specs)] == ["tiny-dense", "tiny-moe autoep"]
    assert [s.label for s in rep.compile_specs(specs)] == ["tiny-dense", "tiny-moe autoep"]


def test_precision_and_compile_pick_cheap_dense_and_the_first_moe():
    specs = rep.grid(rep.FULL, ["native", "autoep"])
    assert [s.label for s in rep.precision_specs(specs)] == [
        "dense-twin-d512-ffn1024",
        "paper-moe-d512-e8 native",
    ]
    assert [s.label for s in rep.compile_specs(specs)] == ["paper-dense-d1024", "paper-moe-d512-e8 native"]


# ---- arithmetic and verdicts ---------------------------------------------------------------------------


def test_mfu_of_a_known_rate_is_the_hand_value():
    # 16,384 tokens of 1 GFLOP each in 0.1 s: 163.84 TFLOP/s, on an H100 / H200 (989.4 TFLOP/s bf16 dense).
    m = rep.row_metrics(tokens=16384, flops=16384 * 1e9, seconds=0.1, peak_tflops=989.4)
    assert m["ms_per_step"] == pytest.approx(100.0)
    assert m["tokens_per_s"] == pytest.approx(163840.0)
    assert m["tflops"] == pytest.approx(163.84)
    assert m["mfu"] == pytest.approx(0.165595, abs=1e-6)


def test_mfu_is_flops_per_token_times_tokens_per_second_over_the_peak():
    cfg = rep.grid(rep.FULL, ["autoep"])[0].cfg  # dense d=1024, L=20, seq 2048
    per_token = flops_per_token(cfg, 2048)
    # d=1024 (16 heads of 64, 4 kv heads), ffn 1024, 32k vocabulary: 6 N + 12 L H Q T by hand.
    n = 20 * (2 * 1024 * 1024 + 2 * 1024 * 256 + 3 * 1024 * 1024) + 32000 * 1024
    assert per_token == 6 * n + 12 * 20 * 2048 * 1024
    m = rep.row_metrics(16384, 16384 * per_token, seconds=0.25, peak_tflops=989.4)
    assert m["mfu"] == pytest.approx(per_token * 16384 / 0.25 / 989.4e12)


def _row(label, kind, tokens_per_s=None, mfu=None, twin=None, status="ok"):
    name, _, backend = label.partition(" ")
    return dict(
        name=name,
        label=label,
        kind=kind,
        backend=backend or "-",
        twin=twin,
        twin_of=[],
        tokens_per_s=tokens_per_s,
        mfu=mfu,
        status=status,
    )


def test_twin_ratios_and_goal_verdicts():
    rows = [
        _row("dense-a", "dense", 1000.0, mfu=0.46),
        _row("dense-b", "dense", 900.0, mfu=0.44),
        _row("twin-a", "twin", 2000.0, mfu=0.30),
        _row("moe-a autoep", "moe", 1700.0, twin="twin-a"),
        _row("moe-a native", "moe", 1000.0, twin="twin-a"),
        _row("moe-b autoep", "moe", None, twin="twin-a", status="error"),
        _row("moe-c autoep", "moe", 1900.0, twin="twin-c"),
        _row("twin-c", "twin", None, status="skipped"),
    ]
    rep.add_twin_ratios(rows)
    assert [r.get("vs_twin") for r in rows if r["kind"] == "moe"] == [0.85, 0.5, None, None]
    verdicts = [(g["goal"], g["model"], g["verdict"]) for g in rep.goal_verdicts(rows)]
    assert verdicts == [
        ("dense MFU", "dense-a", "pass"),
        ("dense MFU", "dense-b", "miss"),
        ("MoE tokens/s / twin", "moe-a autoep", "pass"),
        ("MoE tokens/s / twin", "moe-a native", "miss"),
        ("MoE tokens/s / twin", "moe-b autoep", "n/a"),
        ("MoE tokens/s / twin", "moe-c autoep", "n/a"),
    ]
    assert rep.GOAL_DENSE_MFU == 0.45 and rep.GOAL_MOE_VS_TWIN == 0.8


def test_agreement_is_the_largest_relative_loss_difference():
    fp32 = [10.0, 8.0, 5.0]
    out = rep.agreement([10.01, 8.0, 5.05], fp32)
    assert out["max_rel_diff"] == pytest.approx(0.01) and out["worst_step"] == 2
    assert out["verdict"] == "pass" and out["tolerance"] == 0.02
    assert out["fp32_first_last"] == [10.0, 5.0] and out["bf16_first_last"] == [10.01, 5.05]
    assert rep.agreement([10.0, 8.0, 5.2], fp32)["verdict"] == "fail"  # 4%
    assert rep.agreement([10.0, 8.0, 5.05], fp32, rtol=0.005)["verdict"] == "fail"
    nan = rep.agreement([10.0, float("nan"), 5.0], fp32)
    assert nan["verdict"] == "fail" and nan["max_rel_diff"] is None
    with pytest.raises(ValueError, match="3 and 2 steps"):
        rep.agreement([1.0, 2.0, 3.0], [1.0, 2.0])


def test_compile_is_on_only_when_it_is_faster():
    on = rep.compile_choice(eager_s=0.3, compiled_s=0.2)
    assert on["choice"] == "on" and on["speedup"] == pytest.approx(1.5)
    assert (on["eager_ms"], on["compiled_ms"]) == pytest.approx((300.0, 200.0))
    off = rep.compile_choice(eager_s=0.2, compiled_s=0.25)
    assert off["choice"] == "off" and off["speedup"] == pytest.approx(0.8)


# ---- the whole pipeline with a stand-in for the GPU ----------------------------------------------------


def _fake_measure(fail=()):
    """measure() without DeepSpeed: a step of a model takes active-parameters / 1e6 seconds."""

    def measure(spec, prof, device, zero_stage, precision, warmup, steps, compile_backend=None):
        if spec.label in fail:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nsecond line")
        tokens = prof.micro_batch * prof.accumulation * prof.seq_len
        seconds = count_params(spec.cfg).active / 1e6 / (2 if compile_backend else 1)
        drift = 1.001 if precision == "bf16" else 1.0
        losses = [5.0 * drift - 0.1 * i for i in range(warmup + steps)]
        flops = tokens * flops_per_token(spec.cfg, prof.seq_len)
        return Measured(seconds, tokens, flops, 3 * seconds, losses, 1.5)

    return measure


def _args(tmp_path, *extra):
    return gpu_check.parse_args(
        ["--device", "cpu", "--tiny", "--peak-tflops", "1", "--out", str(tmp_path), *extra]
    )


def test_the_report_holds_every_section_and_the_arithmetic(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "measure", _fake_measure())
    report = gpu_check.run(_args(tmp_path))
    assert gpu_check.exit_code(report) == 0
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(saved) == SECTIONS
    dense, autoep, native = saved["grid"]
    twin_s = dense["active"] / 1e6  # the stand-in's step time
    assert dense["tokens_per_s"] == pytest.approx(128 / twin_s)  # 2 sequences of 64 tokens
    assert dense["ms_per_step"] == pytest.approx(1000 * twin_s)
    assert dense["mfu"] == pytest.approx(dense["flops_per_token"] * 128 / twin_s / 1e12)
    assert autoep["vs_twin"] == pytest.approx(dense["active"] / autoep["active"])
    assert [g["verdict"] for g in saved["goals"]] == ["miss", "pass", "pass"]
    assert [p["verdict"] for p in saved["precision"]] == ["pass", "pass"]
    assert saved["precision"][0]["max_rel_diff"] == pytest.approx(0.001 * 5 / 4.8, rel=1e-6)
    assert [(c["choice"], round(c["speedup"], 9)) for c in saved["compile"]] == [("on", 2.0), ("on", 2.0)]
    assert saved["header"]["peak_source"] == "--peak-tflops" and dense["peak_mem_gib"] == 1.5
    md = (tmp_path / "gpu_check.md").read_text()
    assert md == rep.render_markdown(report)
    active = f"{dense['active'] / 1e3:.3g}K"
    line = f"| tiny-dense (twin of tiny-moe) | {active} | {active} | {1000 * twin_s:.1f} | "
    assert line in md
    assert "| tiny-moe native | " in md and "| MoE tokens/s / twin | tiny-moe autoep | " in md
    assert "| tiny-dense | 3 | 5.0000 -> 4.8000 | 5.0050 -> 4.8050 | 1.04e-03 | 0.02 | pass |" in md
    out = capsys.readouterr().out
    assert out.count("tiny-moe native: ok") == 1


def test_a_failed_measurement_is_reported_and_the_rest_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "measure", _fake_measure(fail={"tiny-moe native"}))
    report = gpu_check.run(_args(tmp_path))
    assert gpu_check.exit_code(report) == 1
    native = report["grid"][2]
    assert (
        native["status"] == "error"
        and native["error"] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert native["vs_twin"] is None and report["goals"][-1]["verdict"] == "n/a"
    assert all(r["status"] == "ok" for r in report["grid"][:2] + report["precision"] + report["compile"])
    md = rep.render_markdown(report)
    assert "| tiny-moe native **error**: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB |" in md


def test_nothing_starts_after_the_budget(tmp_path, monkeypatch):
    clock = iter(range(0, 100_000, 100))  # every reading of the check's clock is 100 s later
    monkeypatch.setattr(
        gpu_check, "time", SimpleNamespace(perf_counter=lambda: next(clock), strftime=time.strftime)
    )
    monkeypatch.setattr(gpu_check, "measure", _fake_measure())
    report = gpu_check.run(_args(tmp_path, "--budget-s", "250"))
    statuses = [r["status"] for r in report["grid"] + report["precision"] + report["compile"]]
    assert statuses[0] == "ok" and statuses[-1] == "skipped" and "skipped" in statuses[:3]
    assert gpu_check.exit_code(report) == 1
    skipped = next(r for r in report["grid"] if r["status"] == "skipped")
    assert skipped["error"] == "--budget-s 250 spent"


def test_json_has_no_nan(tmp_path):
    report = {s: [] for s in SECTIONS}
    report["header"] = {
        "date": "d",
        "device": "x",
        "torch": "t",
        "deepspeed": "d",
        "setup": [],
        "v": float("nan"),
    }
    rep.write_outputs(report, str(tmp_path / "out"))
    text = (tmp_path / "out" / "gpu_check.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))["header"]["v"] is None


# ---- the real thing, tiny, on this CPU -----------------------------------------------------------------


@pytest.mark.slow  # 17-31 s on 2 shared cores: nine engines
def test_tiny_cpu_run_end_to_end(tmp_path, process_group, capsys):
    report = gpu_check.run(_args(tmp_path))
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(saved) == SECTIONS
    rows = saved["grid"] + saved["precision"] + saved["compile"]
    assert [r["status"] for r in rows] == ["ok"] * 7 and gpu_check.exit_code(report) == 0
    for r in saved["grid"]:
        assert r["tokens_per_s"] > 0 and r["mfu"] == pytest.approx(r["tflops"] / 1.0)
        assert r["tokens_per_s"] == pytest.approx(128 / (r["ms_per_step"] / 1000))
    assert [r.get("vs_twin") is not None for r in saved["grid"]] == [False, True, True]
    for p in saved["precision"]:  # 3 steps from the same weights on one batch: the loss falls in both
        assert len(p["losses"]["fp32"]) == len(p["losses"]["bf16"]) == 3
        assert p["fp32_first_last"][1] < p["fp32_first_last"][0] and p["verdict"] == "pass"
    assert [c["choice"] in ("on", "off") for c in saved["compile"]] == [True, True]
    assert "] tiny-moe autoep compiled: ok" in capsys.readouterr().out  # one line per measurement, as it ends


@pytest.mark.slow
def test_the_shell_wrapper_refuses_bad_arguments_before_installing():
    out = subprocess.run(
        ["bash", str(REPO / "bench/gpu_check.sh"), "--steps", "0"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr == "gpu_check: error: --steps=0 must be >= 1 (see --help)\n" and out.stdout == ""


@pytest.mark.slow
def test_the_shell_wrapper_runs_the_tiny_check_on_a_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in RENDEZVOUS_VARS}  # this process's group is not its
    env.update(OUT=str(tmp_path), OMP_NUM_THREADS="2")
    cmd = ["bash", str(REPO / "bench/gpu_check.sh"), "--device", "cpu", "--tiny", "--skip", "compile"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(saved) == SECTIONS and saved["compile"] == []
    assert "| tiny-moe autoep |" in out.stdout and out.stdout.rstrip().endswith("exit code 0")
