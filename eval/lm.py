"""What the benchmark suites need from a model: log-likelihoods of continuations and greedy generation."""

from __future__ import annotations

from typing import Protocol


class LanguageModel(Protocol):
    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """For each (context, continuation): (sum of log p(continuation tokens | context), number of
        continuation tokens). The continuation starts exactly where the context ends (no space added)."""
        ...

    def generate(self, prompts: list[str], max_new_tokens: int, stop: list[str]) -> list[str]:
        """Greedy continuation of each prompt, as text, cut before the first occurrence of any stop string
        (and at end of sequence)."""
        ...


class ModelLM:
    """Our CausalLM and its sentencepiece tokenizer behind the LanguageModel protocol, on one device.

    Text is scored the way pre-training saw it: documents are separated by </s>, so every context starts
    after an </s> token (the model never saw <s>)."""

    def __init__(self, model, tokenizer, device="cpu", batch_size: int = 16):
        import torch

        self.model, self.tok, self.device, self.batch_size = model, tokenizer, torch.device(device), batch_size
        self.max_len = model.cfg.max_seq_len
        self.start = tokenizer.eos_id if tokenizer.eos_id >= 0 else tokenizer.bos_id

    def _split(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # Trailing spaces of the context belong to the continuation (sentencepiece attaches a space to the
        # word after it), then the continuation's ids are what the whole text adds after the context's.
        stripped = context.rstrip(" ")
        continuation = context[len(stripped):] + continuation
        ctx = self.tok.encode(stripped)
        whole = self.tok.encode(stripped + continuation)
        if whole[:len(ctx)] == ctx:
            return [self.start] + ctx, whole[len(ctx):]
        return [self.start] + ctx, self.tok.encode(continuation)

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, int]]:
        import torch

        encoded = [self._split(c, x) for c, x in requests]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]) - len(encoded[i][1]))
        results: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            seqs, spans = [], []
            for i in rows:
                ctx, cont = encoded[i]
                seq = (ctx + cont)[-(self.max_len + 1):]  # keep the continuation; cut the context's start
                n = min(len(cont), len(seq) - 1)  # a continuation longer than the model's window: its end
                seqs.append(seq)
                spans.append((len(seq) - n, n))
            width = max(len(s) for s in seqs) - 1
            ids = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, seq in enumerate(seqs):
                ids[r, :len(seq) - 1] = torch.tensor(seq[:-1])
            with torch.no_grad():
                logp = torch.log_softmax(self.model(ids.to(self.device)).float(), dim=-1).cpu()
            for r, (i, (first, n)) in enumerate(zip(rows, spans)):
                targets = torch.tensor(seqs[r][first:first + n])
                picked = logp[r, first - 1:first - 1 + n].gather(1, targets[:, None])
                results[i] = (float(picked.sum()), n)
        return results

    def generate(self, prompts: list[str], max_new_tokens: int, stop: list[str]) -> list[str]:
        from ds_parrots.models.generate import greedy_generate

        budget = max(1, min(max_new_tokens, self.max_len - 1))
        encoded = [([self.start] + self.tok.encode(p))[-(self.max_len - budget):] for p in prompts]

        def stopped(ids: list[int]) -> bool:
            text = self.tok.decode([t for t in ids if t != self.tok.eos_id])
            return any(s in text for s in stop)

        outs: list[str] = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start:start + self.batch_size]
            generated = greedy_generate(self.model, chunk, budget, pad_id=0, eos_id=self.tok.eos_id,
                                        device=self.device, sync_ranks=False, should_stop=stopped if stop else None)
            for ids in generated:
                text = self.tok.decode([t for t in ids if t != self.tok.eos_id])
                cut = min([text.index(s) for s in stop if s in text], default=len(text))
                outs.append(text[:cut])
        return outs
