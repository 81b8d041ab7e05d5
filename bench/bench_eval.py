"""Throughput of ds-parrots-eval's engine (ParrotLM) against `lm_eval --model hf` (HFLM) on the same export and
the same generated lm-eval tasks, in one process, one after the other (each once warmed up on a tiny run).

    python bench/bench_eval.py [--kind moe|dense] [--docs 40] [--shots 0] [--batch-size 16]

Prints documents per second of each and the ratio ours / lm-eval's (goal >= 1.0x), with the machine (lscpu
model name) and the load average before and after: a busy machine makes the numbers meaningless.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # bench/machine.py: this script's folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TASKS = ["arc_easy", "hellaswag", "piqa", "winogrande", "gsm8k"]


def timed(lm, tasks, limit) -> float:
    from ds_parrots_eval.harness.run import evaluate_tasks

    start = time.perf_counter()
    evaluate_tasks(lm, tasks, limit=limit, bootstrap_iters=0)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", default="moe", choices=["moe", "dense"], help="tiny GQA MoE or tied dense model")
    p.add_argument("--docs", type=int, default=40, help="documents per task")
    p.add_argument("--shots", type=int, default=0, help="few-shot exemplars per task")
    p.add_argument("--batch-size", type=int, default=16, help="batch size of both engines")
    args = p.parse_args()
    from lm_eval.models.huggingface import HFLM

    from ds_parrots_eval.harness.task_files import plan
    from ds_parrots_eval.harness.tokenizer import from_hf_folder
    from ds_parrots_eval.lm import ParrotLM
    from eval_bench_files import export, tiny_model, write_bench
    from text_corpus import train_tiny

    print(f"machine: {describe()}; load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tok = train_tiny(root)
        model = tiny_model(args.kind, 400, max_seq_len=1024)
        folder = export(model, tok.path, root / "hf")
        bench = write_bench(root / "bench", n=args.docs)
        tasks = plan(TASKS, bench, {t: args.shots for t in TASKS})
        ours = ParrotLM(model, from_hf_folder(folder), batch_size=args.batch_size, progress=False)
        theirs = HFLM(pretrained=str(folder), batch_size=args.batch_size, device="cpu", dtype="float32")
        for lm in (ours, theirs):  # warm-up: datasets' caches, first-call costs
            timed(lm, tasks, 2)
        t_ours, t_theirs = timed(ours, tasks, None), timed(theirs, tasks, None)
    docs = args.docs * len(TASKS)
    print(f"{docs} documents ({', '.join(TASKS)}; {args.shots}-shot, {args.kind}, batch {args.batch_size})")
    print(f"ds-parrots-eval (ParrotLM): {t_ours:.1f} s, {docs / t_ours:.1f} docs/s")
    print(f"lm_eval --model hf (HFLM):  {t_theirs:.1f} s, {docs / t_theirs:.1f} docs/s")
    print(
        f"ratio (ours / lm-eval's throughput): {t_theirs / t_ours:.2f}x; load average after: {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
