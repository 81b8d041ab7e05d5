"""`ds-parrots export-hf`: logits parity with transformers' Mistral / Mixtral, tokenizers that give our ids,
refusals that name what is wrong, and an export that is all or nothing."""

import dataclasses
import json

import pytest
import torch

from ds_parrots.checkpoints.hf_export import export_hf
from ds_parrots.config import ModelConfig
from ds_parrots.errors import ConfigError
from ds_parrots.models import build_model

transformers = pytest.importorskip("transformers")

DENSE = ModelConfig(
    vocab_size=100,
    d_model=64,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    ffn_dim=96,
    max_seq_len=64,
    rope_theta=500.0,
    norm_eps=1e-6,
)
MOE = dataclasses.replace(DENSE, num_experts=4, top_k=2)
TIED = dataclasses.replace(DENSE, tie_embeddings=True)


def make_model(cfg: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # RMSNorm weights start at 1: make a wrong mapping visible
                p.copy_(1 + 0.5 * torch.randn_like(p))
    return model


def hf_logits(out_dir, ids):
    hf = transformers.AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return hf, hf(input_ids=ids).logits


@pytest.mark.parametrize(
    "cfg,arch",
    [(DENSE, "MistralForCausalLM"), (MOE, "MixtralForCausalLM"), (TIED, "MistralForCausalLM")],
    ids=["dense", "moe", "tied"],
)
def test_transformers_gives_our_logits(tmp_path, cfg, arch):
    model = make_model(cfg)
    export_hf(model.state_dict(), cfg, tmp_path / "hf")
    ids = torch.randint(0, cfg.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))
    hf, theirs = hf_logits(tmp_path / "hf", ids)
    with torch.no_grad():
        ours = model(ids)
    assert type(hf).__name__ == arch
    assert theirs.shape == ours.shape
    assert (theirs - ours).abs().max().item() < 1e-4


def test_moe_export_is_the_hub_mixtral_layout(tmp_path):
    from safetensors import safe_open

    model = make_model(MOE)
    export_hf(model.state_dict(), MOE, tmp_path / "hf")
    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        w1, w3 = (
            f.get_tensor("model.layers.1.block_sparse_moe.experts.2.w1.weight"),
            f.get_tensor("model.layers.1.block_sparse_moe.experts.2.w3.weight"),
        )
    gate_up = model.state_dict()["model.layers.1.mlp.experts.gate_up_proj"][2]
    assert torch.equal(torch.cat([w1, w3]), gate_up)  # w1 = gate rows, w3 = up rows
    assert "model.layers.0.block_sparse_moe.gate.weight" in names
    assert not any(".mlp." in n for n in names)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["num_local_experts"], config["num_experts_per_tok"], config["sliding_window"]) == (
        4,
        2,
        None,
    )
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 500.0


def test_large_exports_are_sharded_with_an_index(tmp_path):
    model = make_model(MOE)  # experts split over shards: transformers 5 fuses them across files
    export_hf(model.state_dict(), MOE, tmp_path / "hf", max_shard_bytes=40_000)
    index = json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 2 and not (tmp_path / "hf" / "model.safetensors").exists()
    assert all((tmp_path / "hf" / f).is_file() for f in files)
    assert (
        len(index["weight_map"]) == 2 * (6 + 1 + 3 * 4) + 3
    )  # per layer: attention + norms, router, experts
    ids = torch.randint(0, MOE.vocab_size, (1, 16))
    _, theirs = hf_logits(tmp_path / "hf", ids)
    with torch.no_grad():
        assert (theirs - model(ids)).abs().max().item() < 1e-4


def test_bfloat16_export_stores_bfloat16(tmp_path):
    from safetensors import safe_open

    model = make_model(DENSE)
    export_hf(model.state_dict(), DENSE, tmp_path / "hf", dtype=torch.bfloat16)
    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as f:
        t = f.get_tensor("model.embed_tokens.weight")
    assert t.dtype == torch.bfloat16
    assert torch.equal(t, model.model.embed_tokens.weight.detach().to(torch.bfloat16))
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.fixture(scope="module")
def sp(tmp_path_factory):
    from text_corpus import train_tiny

    return train_tiny(tmp_path_factory.mktemp("sp"))


def test_sentencepiece_tokenizer_gives_sentencepiece_ids(tmp_path, sp):
    from text_corpus import VOCAB, english_lines

    cfg = dataclasses.replace(DENSE, vocab_size=VOCAB)
    export_hf(make_model(cfg).state_dict(), cfg, tmp_path / "hf", tokenizer=sp)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    # A leading space, runs of spaces, a newline and unseen characters (byte fallback) included.
    for text in english_lines(20, seed=5) + [
        " leading space",
        "two  spaces\tand a tab ",
        "line\nbreak",
        "Ωmega 😀",
    ]:
        assert tok(text)["input_ids"] == sp.encode(text), text
        assert tok.decode(sp.encode(text)) == text
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (sp.bos_id, sp.eos_id, sp.unk_id)
    assert (tmp_path / "hf" / "tokenizer.model").read_bytes() == sp.path.read_bytes()
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (1, 2, None)


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path, sp):
    with pytest.raises(ConfigError, match=f"{sp.vocab_size} ids"):
        export_hf(make_model(DENSE).state_dict(), DENSE, tmp_path / "hf", tokenizer=sp.path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("task", ["phonebook", "shortest-path"])
def test_task_tokenizer_round_trips_ids(tmp_path, task):
    from ds_parrots.tasks import build_task

    t = build_task(task)
    cfg = dataclasses.replace(DENSE, vocab_size=t.tokenizer.vocab_size)
    export_hf(make_model(cfg).state_dict(), cfg, tmp_path / "hf", tokenizer=t.tokenizer)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "hf" / "tokenizer.json"))
    ex = t.eval_examples()[0]
    ids = list(ex.prompt) + list(ex.answer)
    text = tok.decode(ids)
    assert tok(text, add_special_tokens=False)["input_ids"] == ids
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    body = tok.decode(ids[1:-1])
    assert auto(body)["input_ids"] == ids[:-1]  # <bos> first, as every training example starts
    assert (auto.pad_token_id, auto.bos_token_id, auto.eos_token_id) == (0, 1, 2)


@pytest.mark.parametrize(
    "change,named",
    [
        (
            lambda sd: sd.pop("model.layers.1.self_attn.k_proj.weight"),
            "model.layers.1.self_attn.k_proj.weight",
        ),
        (lambda sd: sd.__setitem__("model.norm.weight", torch.ones(65)), "model.norm.weight"),
        (
            lambda sd: sd.__setitem__("model.layers.9.mlp.up_proj.weight", torch.ones(1)),
            "model.layers.9.mlp.up_proj",
        ),
    ],
    ids=["missing", "shape", "extra"],
)
def test_a_state_dict_that_does_not_match_the_config_is_refused_by_name(tmp_path, change, named):
    state = make_model(DENSE).state_dict()
    change(state)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        export_hf(state, DENSE, tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_out_dir_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    state = make_model(DENSE).state_dict()
    with pytest.raises(ConfigError, match="--overwrite"):
        export_hf(state, DENSE, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    export_hf(state, DENSE, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()


def test_a_failed_export_leaves_the_old_folder_and_no_temporary_files(tmp_path):
    from ds_parrots.data.tokenizer import SymbolTokenizer

    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    unwritable = SymbolTokenizer(("ab", " "))  # multi-character and whitespace symbols: no tokenizer.json
    with pytest.raises(ConfigError, match="tokenizer"):
        export_hf(make_model(DENSE).state_dict(), DENSE, out, tokenizer=unwritable, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_cli_exports_a_consolidated_task_checkpoint(tmp_path, capsys):
    from ds_parrots.checkpoints.consolidate import save_consolidated
    from ds_parrots.checkpoints.load import FORMAT, VERSION
    from ds_parrots.cli.main import main
    from ds_parrots.tasks import PhonebookConfig, build_task

    task_cfg = PhonebookConfig(book_size=10, first_names=10, last_names=10, num_queries=5)
    cfg = dataclasses.replace(MOE, vocab_size=build_task("phonebook", task_cfg).tokenizer.vocab_size)
    model = make_model(cfg)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": dataclasses.asdict(cfg),
        "task_name": "phonebook",
        "task_config": dataclasses.asdict(task_cfg),
        "tokenizer": None,
    }
    ckpt = save_consolidated(model.state_dict(), meta, tmp_path / "run.safetensors")
    assert main(["export-hf", str(ckpt), "--out", str(tmp_path / "hf"), "--dtype", "bfloat16"]) == 0
    assert "MixtralForCausalLM" in capsys.readouterr().out
    names = {p.name for p in (tmp_path / "hf").iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    } <= names
    assert main(["export-hf", str(ckpt), "--out", str(tmp_path / "hf")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_exported_folder_loads_back_for_evaluation(tmp_path):
    """ds-parrots-eval takes an export (or any Mistral / Mixtral folder): the weights read back exactly."""
    from ds_parrots.checkpoints.load import load_model

    for experts in (1, 4):
        torch.manual_seed(3)
        cfg = ModelConfig(
            vocab_size=50,
            d_model=32,
            n_layers=2,
            n_heads=4,
            n_kv_heads=2,
            num_experts=experts,
            top_k=2,
            max_seq_len=16,
        )
        ours = build_model(cfg).eval()
        export_hf(ours.state_dict(), cfg, tmp_path / f"e{experts}")
        back, meta = load_model(tmp_path / f"e{experts}")
        assert back.cfg == dataclasses.replace(cfg, ffn_dim=cfg.ffn) and meta["format"] == "hf"
        for k, v in ours.state_dict().items():
            assert torch.equal(back.state_dict()[k], v), k
