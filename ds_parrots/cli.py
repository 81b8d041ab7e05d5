"""`ds-parrots`: the console entry point.

    ds-parrots train <phonebook|shortest-path|two-hop> [flags]   one-process training (same flags as train.py)
    ds-parrots presets [--vocab-size N]                         the named model presets and their sizes
"""

from __future__ import annotations

import sys
from typing import Optional

from ds_parrots.config import PRESETS, ModelConfig, preset_model
from ds_parrots.model.counting import count_params, human


def presets_table(vocab_size: Optional[int] = None) -> str:
    rows = [f"{'preset':<24} {'L':>3} {'d':>5} {'heads':>7} {'experts':>8} {'vocab':>6} {'total':>8} {'active':>8}"]
    for name in PRESETS:
        # Paper presets fix their 32k vocabulary; the others take --vocab-size (default 32k).
        cfg = preset_model(name, ModelConfig(vocab_size=vocab_size or 32000))
        c = count_params(cfg)
        rows.append(f"{name:<24} {cfg.n_layers:>3} {cfg.d_model:>5} {cfg.n_heads:>3}/{cfg.kv_heads:<3} "
                    f"{cfg.num_experts:>8} {cfg.vocab_size:>6} {human(c.total):>8} {human(c.active):>8}")
    return "\n".join(rows)


USAGE = __doc__


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.strip())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        from ds_parrots.train import main as train_main

        return train_main(rest)
    if cmd == "presets":
        vocab = None
        if rest[:1] == ["--vocab-size"] and len(rest) == 2 and rest[1].isdigit():
            vocab = int(rest[1])
        elif rest:
            print("usage: ds-parrots presets [--vocab-size N]  (sizes at the 32k vocabulary unless given)",
                  file=sys.stderr)
            return 2
        print(presets_table(vocab))
        print("\nSynthetic tasks set the vocabulary from their tokenizer; sizes above use the vocab shown.")
        return 0
    print(f"error: unknown command {cmd!r}\n\n{USAGE.strip()}", file=sys.stderr)
    return 2


def console() -> None:
    """The `ds-parrots` console script (see ds_parrots.distributed.exit_process for why not sys.exit)."""
    from ds_parrots.distributed import exit_process

    exit_process(main())


if __name__ == "__main__":
    console()
