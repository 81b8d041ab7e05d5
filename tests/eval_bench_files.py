"""Small benchmark files in their public Hugging Face schemas, a tiny model of each kind and its export: shared
by the lm-eval parity tests, the rank tests and bench/bench_eval.py."""

import json
from pathlib import Path

WORDS = "parrot expert mixture memory reasoning graph path phone book number time".split()


def write_split(bench_dir: Path, name: str, split: str, rows: list) -> Path:
    folder = Path(bench_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _w(i: int, k: int = 0) -> str:
    return WORDS[(i * 7 + k * 3) % len(WORDS)]


def arc(i):
    texts = [f"the {_w(i, k)} of {_w(i, k + 1)}" for k in range(4)]
    return {
        "id": f"q{i}",
        "question": f"Which {_w(i)} is the {_w(i, 2)} in the book {i}?",
        "choices": {"text": texts, "label": list("ABCD")},
        "answerKey": "ABCD"[i % 4],
    }


def hellaswag(i):
    # [tags] as in the WikiHow part: lm-eval's preprocess strips them (and before stripping the text).
    return {
        "ind": i,
        "activity_label": "Making a phone book",
        "ctx_a": f"A man [header] writes {_w(i)} names {i}.",
        "ctx_b": "then he",
        "ctx": "",
        "endings": [
            f" reads the {_w(i, 1)} [title] slowly.",
            f"draws a {_w(i, 2)} path.",
            f"[step] calls the {_w(i, 3)}.",
            "sleeps. ",
        ],
        "label": str(i % 4),
        "source_id": "x",
        "split": "val",
        "split_type": "indomain",
    }


def piqa(i):
    return {
        "goal": f"How do I open a {_w(i)} jar {i}?",
        "sol1": f"twist the {_w(i, 1)} lid",
        "sol2": f"eat the {_w(i, 2)} lid",
        "label": i % 2,
    }


def winogrande(i):
    return {
        "sentence": f"The parrot chased the {_w(i)} because _ was hungry on day {i}.",
        "option1": "parrot",
        "option2": _w(i),
        "answer": "12"[i % 2],
    }


def gsm8k(i):
    return {
        "question": f"A parrot has {i + 2} books and buys {i} more. How many books now?",
        "answer": f"It has {i + 2} + {i} = {2 * i + 2} books.\n#### {2 * i + 2}",
    }


ROWS = {
    "arc_easy": (arc, "test"),
    "hellaswag": (hellaswag, "validation"),
    "piqa": (piqa, "validation"),
    "winogrande": (winogrande, "validation"),
    "gsm8k": (gsm8k, "test"),
}


def write_bench(bench_dir: Path, n: int = 8) -> Path:
    """Every parity task: its scored split (n rows) and a train split (n rows) for the exemplars."""
    for name, (make, split) in ROWS.items():
        write_split(bench_dir, name, split, [make(i) for i in range(n)])
        write_split(bench_dir, name, "train", [make(i + 100) for i in range(n)])
    return Path(bench_dir)


def tiny_model(kind: str, vocab: int, max_seq_len: int = 1024, seed: int = 0):
    """A random tiny model: 'moe' (GQA, 4 experts, top-2) or 'dense' (tied embeddings)."""
    import torch

    from ds_parrots.config import ModelConfig
    from ds_parrots.models import build_model

    extra = dict(num_experts=4, top_k=2, n_kv_heads=2) if kind == "moe" else dict(tie_embeddings=True)
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=vocab, d_model=32, n_layers=2, n_heads=4, max_seq_len=max_seq_len, **extra)
    return build_model(cfg).eval()


def export(model, tokenizer_model: Path, out: Path) -> Path:
    from ds_parrots.checkpoints.hf_export import export_hf

    export_hf(model.state_dict(), model.cfg, out, tokenizer=tokenizer_model)
    return out
