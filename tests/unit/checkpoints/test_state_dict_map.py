"""state_dict_map: ours -> every layout -> ours is exact, and each layout's names and shapes are those of
the real module (transformers, DeepSpeed); the DeepSpeed checkpoint reader's version gate."""

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from ds_parrots.checkpoints import state_dict_map as sdm
from ds_parrots.config import ModelConfig
from ds_parrots.errors import ConfigError
from ds_parrots.models import build_model

MOE = ModelConfig(
    vocab_size=50,
    d_model=32,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    ffn_dim=48,
    num_experts=8,
    top_k=2,
    max_seq_len=16,
)
DENSE_TIED = ModelConfig(
    vocab_size=50,
    d_model=32,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    ffn_dim=48,
    max_seq_len=16,
    tie_embeddings=True,
)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pre_refactor_runs"


def random_state(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Our state dict with every value distinct, so that a misplaced row or expert cannot go unnoticed."""
    torch.manual_seed(0)
    state = {k: torch.randn(v.shape) for k, v in build_model(cfg).state_dict().items()}
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


@pytest.mark.parametrize("cfg", [MOE, DENSE_TIED], ids=["moe", "dense-tied"])
def test_hf_round_trip_is_exact(cfg):
    state = random_state(cfg)
    assert_same(sdm.from_hf(sdm.to_hf(state, cfg), cfg), state)


@pytest.mark.parametrize("cfg", [MOE, DENSE_TIED], ids=["moe", "dense-tied"])
def test_hf_names_and_shapes_are_those_transformers_saves(tmp_path, cfg):
    transformers = pytest.importorskip("transformers")
    from safetensors import safe_open

    sizes = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=cfg.max_seq_len,
        tie_word_embeddings=cfg.tie_embeddings,
    )
    if cfg.is_moe:
        model = transformers.MixtralForCausalLM(
            transformers.MixtralConfig(
                num_local_experts=cfg.num_experts, num_experts_per_tok=cfg.top_k, **sizes
            )
        )
    else:
        model = transformers.MistralForCausalLM(transformers.MistralConfig(**sizes))
    # save_pretrained writes the Hub layout whatever layout the installed transformers keeps in memory.
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        theirs = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    ours = {k: tuple(t.shape) for k, t in sdm.to_hf(random_state(cfg), cfg)}
    assert ours == theirs
    # transformers 5 keeps Mixtral's experts fused in memory, in our layout: that reads back too.
    assert set(sdm.from_hf(model.state_dict(), cfg)) == set(random_state(cfg))


def test_hf_experts_go_out_one_expert_at_a_time():
    names = [k for k, _ in sdm.to_hf(random_state(MOE), MOE) if ".experts.0." in k or ".experts.1." in k]
    assert names[:3] == [f"model.layers.0.block_sparse_moe.experts.0.w{i}.weight" for i in (1, 3)] + [
        "model.layers.0.block_sparse_moe.experts.1.w1.weight"
    ]


@pytest.mark.parametrize("ep_size", [1, 2])
def test_native_pieces_of_all_ranks_give_ours_back(ep_size):
    state = random_state(MOE)
    pieces = [sdm.to_native(state, MOE, ep_size, rank) for rank in range(ep_size)]
    local = MOE.num_experts // ep_size
    for rank, piece in enumerate(pieces):
        expert = "model.layers.1.mlp.moe.deepspeed_moe.experts.deepspeed_experts"
        assert f"{expert}.{local}.gate_proj.weight" not in piece
        gate_up = state["model.layers.1.mlp.experts.gate_up_proj"][rank * local + local - 1]
        assert torch.equal(piece[f"{expert}.{local - 1}.gate_proj.weight"], gate_up[: MOE.ffn])
        assert torch.equal(piece[f"{expert}.{local - 1}.up_proj.weight"], gate_up[MOE.ffn :])
    assert_same(sdm.from_native(pieces, MOE, ep_size), state)
    # Four ranks at ep 2: ranks 2 and 3 hold the experts of ranks 0 and 1 again.
    if ep_size == 2:
        assert_same(sdm.from_native(pieces + pieces, MOE, ep_size), state)


def test_native_names_and_shapes_are_deepspeeds():
    pytest.importorskip("deepspeed")
    from deepspeed.moe.layer import MoE

    from ds_parrots.models.feed_forward import SwiGLU

    layer = MoE(
        hidden_size=MOE.d_model,
        expert=SwiGLU(MOE.d_model, MOE.ffn),
        num_experts=MOE.num_experts,
        ep_size=2,
        k=MOE.top_k,
    )
    want = {f"model.layers.0.mlp.moe.{k}": tuple(v.shape) for k, v in layer.state_dict().items()}
    got = {
        k: tuple(v.shape)
        for k, v in sdm.to_native(random_state(MOE), MOE, 2, 1).items()
        if k.startswith("model.layers.0.mlp.")
    }
    assert got == want


def test_autoep_round_trip_and_deepspeeds_shapes():
    pytest.importorskip("deepspeed")
    from deepspeed.moe.ep_experts import GroupedExperts

    state = random_state(MOE)
    autoep = sdm.to_autoep(state, MOE)
    experts = GroupedExperts(
        dim=MOE.d_model, hidden_dim=MOE.ffn, num_experts=MOE.num_experts, use_grouped_mm=False
    )
    for name, t in experts.state_dict().items():
        assert tuple(autoep[f"model.layers.0.mlp.experts.{name}"].shape) == tuple(t.shape)
    assert autoep["model.layers.0.mlp.router.gate.weight"].shape == (MOE.num_experts, MOE.d_model)
    # AutoEP's module repeats its router under mlp.gate.gate: read once.
    aliased = dict(
        autoep, **{"model.layers.0.mlp.gate.gate.weight": autoep["model.layers.0.mlp.router.gate.weight"]}
    )
    assert_same(sdm.from_autoep(aliased, MOE), state)


def test_autoep_rank_slices_and_per_expert_files_give_ours_back():
    state = random_state(MOE)
    autoep = sdm.to_autoep(state, MOE)
    c = sdm.Collector(MOE, sdm.DEEPSPEED_LAYOUTS)
    for name, t in autoep.items():
        if ".experts.w" not in name:
            c.add(name, t)
        elif name.startswith("model.layers.0."):  # one rank's stacked half each, as in ZeRO partitions
            c.add(name, t[:4], first_expert=0)
            c.add(name, t[4:], first_expert=4)
        else:  # AutoEP's per-expert checkpoint files: global index in the name
            for e in range(MOE.num_experts):
                c.add(f"{name}.{e}", t[e])
    assert_same(c.state_dict(), state)
    assert sdm.local_expert_count({"model.layers.0.mlp.experts.w1": (4, 48, 32)}) == 4
    native = sdm.to_native(state, MOE, 2, 0)
    assert sdm.local_expert_count({k: tuple(v.shape) for k, v in native.items()}) == 4
    assert sdm.is_expert_key("model.layers.3.mlp.experts.w2")
    assert not sdm.is_expert_key("model.layers.3.mlp.router.gate.weight")


def test_missing_or_surplus_experts_are_refused_by_name():
    state = random_state(MOE)
    hf = dict(sdm.to_hf(state, MOE))
    del hf["model.layers.1.block_sparse_moe.experts.5.w3.weight"]
    lacks = r"lacks experts \[5\] of model\.layers\.1\.mlp\.experts\.gate_up_proj \(up\)"
    with pytest.raises(ConfigError, match=lacks):
        sdm.from_hf(hf, MOE)
    with pytest.raises(
        ConfigError, match="holds expert 4 of model.layers.0.mlp.experts.gate_up_proj, but the"
    ):
        sdm.from_native(
            [sdm.to_native(state, MOE, 1, 0)], ModelConfig(**{**MOE.__dict__, "num_experts": 4}), 1
        )


def test_dense_state_is_the_same_in_every_layout():
    state = random_state(DENSE_TIED)
    assert sdm.to_native(state, DENSE_TIED, 1, 0) == state
    assert sdm.to_autoep(state, DENSE_TIED) == state
    assert "lm_head.weight" not in dict(sdm.to_hf(state, DENSE_TIED))


# --- the version gate of the DeepSpeed checkpoint reader -------------------------------------------------

GATED = {
    "native-1rank": "mp_rank_00_model_states.pt",
    "dense-z3": "zero_pp_rank_0_mp_rank_00_model_states.pt",
}


def _read(run_dir: Path) -> dict:
    from ds_parrots.parallel.checkpoint_format import read_checkpoint

    config = json.loads((run_dir / "config.json").read_text())
    cfg = ModelConfig(**config["model"])
    return read_checkpoint(
        run_dir / "checkpoints" / "step00000003", cfg, (config.get("moe") or {}).get("ep_size", 1)
    )


def _rewrite_version(path: Path, version: str) -> None:
    states = torch.load(path, map_location="cpu", weights_only=False)  # our own fixture copy
    states["ds_version"] = version
    torch.save(states, path)


@pytest.mark.parametrize("name", sorted(GATED))
def test_checkpoint_of_another_deepspeed_version_is_refused(tmp_path, monkeypatch, name):
    from ds_parrots.parallel.checkpoint_format import ALLOW_VERSION_ENV, TESTED_DEEPSPEED

    monkeypatch.delenv(ALLOW_VERSION_ENV, raising=False)
    want = _read(FIXTURES / name)  # the fixture as written reads
    shutil.copytree(FIXTURES / name, tmp_path / name)
    gated = tmp_path / name / "checkpoints" / "step00000003" / GATED[name]
    _rewrite_version(gated, "0.14.2")
    with pytest.raises(ConfigError) as e:
        _read(tmp_path / name)
    message = str(e.value)
    assert "\n" not in message
    assert str(gated) in message and "0.14.2" in message and TESTED_DEEPSPEED[0] in message
    assert ALLOW_VERSION_ENV in message
    monkeypatch.setenv(ALLOW_VERSION_ENV, "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_same(_read(tmp_path / name), want)
    assert any("0.14.2" in str(w.message) for w in caught)
