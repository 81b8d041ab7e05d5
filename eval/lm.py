"""Our CausalLM as an lm-evaluation-harness model (lm_eval.api.model.TemplateLM).

TemplateLM splits (context, continuation) pairs exactly as lm-eval's HFLM does (trailing spaces of the
context move to the continuation; the continuation's ids are what the whole text adds after the context's),
so given the export's tokenizer our requests are token-for-token HFLM's. Batching, left truncation and
generation follow HFLM too (see lm_eval/models/huggingface.py), with two deliberate differences:
- a generation prompt longer than the window minus the task's generation budget is a one-line error by
  default (`long_prompts="error"`); HFLM silently keeps its last tokens (`long_prompts="truncate"` here);
- generation decodes through our KV cache (ds_parrots.models.generate.greedy_generate), greedy only.
Data-parallel over the ranks of the process group (gloo or NCCL), each rank holding the whole model, by
sharding *requests*, not documents: every rank lets lm-eval build all requests (lm-eval sees rank 0 of 1),
scores every world_size-th of them and all-gathers the results. lm-eval's own rank / world_size protocol
shards documents, but its few-shot sampler draws from one Random(1234) per task in document order, so each
rank's documents would get other exemplars than in one process; sharding requests keeps the prompts, and so
the scores, those of one process (and of lm_eval --model hf) at any world size.
"""

from __future__ import annotations

import json
import logging
from typing import Literal, Optional

import torch
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from ds_parrots.errors import ConfigError

log = logging.getLogger(__name__)


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


class ParrotLM(TemplateLM):
    """loglikelihood, loglikelihood_rolling and generate_until on a CausalLM and a HarnessTokenizer."""

    def __init__(
        self,
        model,
        tokenizer,
        device="cpu",
        batch_size: int = 32,
        context_prefix: Literal["none", "eos"] = "none",
        long_prompts: Literal["error", "truncate"] = "error",
        progress: bool = True,
    ):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
        self.model, self.tok, self._device = model, tokenizer, torch.device(device)
        self.batch_size, self.context_prefix, self.long_prompts = batch_size, context_prefix, long_prompts
        self.max_length = model.cfg.max_seq_len  # what HFLM reads from config.json max_position_embeddings
        self.progress = progress
        dist = _dist()
        # Our ranks; lm-eval keeps its default rank 0 of 1 (see the module docstring).
        self.dp_rank, self.dp_world = (dist.get_rank(), dist.get_world_size()) if dist else (0, 1)
        self.truncated = 0  # log-likelihood requests whose context lost its start to the window

    # --------------------------------------------------------------- tokens
    @property
    def eot_token_id(self) -> int:
        return self.tok.eos_id

    @property
    def prefix_token_id(self) -> int:
        # HFLM: BOS when the tokenizer has one, else EOS; it stands in for an empty context.
        return self.tok.bos_id if self.tok.bos_id is not None else self.tok.eos_id

    def tok_encode(self, string: str, add_special_tokens: Optional[bool] = None, **kwargs) -> list[int]:
        add = True if add_special_tokens is None else add_special_tokens
        bos = self.tok.text_of(self.tok.bos_id)
        if add_special_tokens is None and bos and string.startswith(bos):
            add = False  # as HFLM: a string that already starts with BOS gets no second one
        ids = self.tok.encode(string, add_special_tokens=add)
        # --context-prefix eos: every context starts after </s>, as documents followed </s> in pre-training.
        return [self.tok.eos_id] + ids if add and self.context_prefix == "eos" else ids

    def tok_decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)

    # --------------------------------------------------------------- log-likelihood
    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm or not self.progress)

    def _gather(self, mine: dict, n: int) -> list:
        """Every rank's {request index: result} merged into one list, on every rank."""
        dist = _dist()
        if dist is None:
            return [mine[i] for i in range(n)]
        parts: list = [None] * self.dp_world
        dist.all_gather_object(parts, mine)  # works on gloo and NCCL alike
        merged = {k: v for part in parts for k, v in part.items()}
        return [merged[i] for i in range(n)]

    @torch.no_grad()
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        window = self.max_length
        # Longest first (HFLM's order): padding stays small and an out-of-memory batch shows at once; ranks
        # take every world_size-th request of that order, so their batches are alike.
        order = sorted(
            range(len(requests)),
            key=lambda i: (
                -len(requests[i][1]) - len(requests[i][2]),
                tuple(requests[i][1] + requests[i][2]),
            ),
        )
        order = order[self.dp_rank :: self.dp_world]
        out: dict = {}
        cut = 0
        size = override_bs or self.batch_size
        bar = tqdm(
            total=len(order),
            disable=disable_tqdm or not self.progress,
            desc="loglikelihood",
            dynamic_ncols=True,
        )
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            inputs, conts = [], []
            for i in rows:
                _, ctx, cont = requests[i]
                if len(cont) > window:
                    raise ConfigError(
                        f"a continuation of {len(cont)} tokens is longer than the model's window "
                        f"({window} tokens); it cannot be scored"
                    )
                if len(ctx) + len(cont) > window + 1:
                    cut += 1  # HFLM's left truncation: the context loses its start
                inputs.append((ctx + cont)[-(window + 1) :][:-1])
                conts.append(cont)
            width = max(len(x) for x in inputs)
            ids = torch.zeros((len(inputs), width), dtype=torch.long)
            for r, x in enumerate(inputs):
                ids[r, : len(x)] = torch.tensor(x)  # right padding: a causal row ignores what follows it
            logits = self.model(ids.to(self._device))
            for r, i in enumerate(rows):
                n, length = len(conts[r]), len(inputs[r])
                # log_softmax of the scored positions only (HFLM normalizes every position; same values).
                logp = torch.log_softmax(logits[r, length - n : length].float(), dim=-1).cpu()
                target = torch.tensor(conts[r])
                greedy = bool((logp.argmax(-1) == target).all())
                out[i] = (float(logp.gather(1, target[:, None]).sum()), greedy)
            bar.update(len(rows))
        bar.close()
        self.truncated += sum(self._gather({self.dp_rank: cut}, self.dp_world))
        results = self._gather(out, len(requests))
        for req, result in zip(requests, results):
            if req[0] is not None:
                self.cache_hook.add_partial("loglikelihood", req[0], result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        windows, owner = [], []
        for i, (string,) in enumerate(req.args for req in requests):
            for ctx, cont in map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            ):
                windows.append((None, ctx, cont))
                owner.append(i)
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        totals = [0.0] * len(requests)
        for i, (ll, _) in zip(owner, scores):
            totals[i] += ll
        return totals

    # --------------------------------------------------------------- generation
    def _prompts(self, requests, budget: int) -> list[list[int]]:
        """Each request's context ids, checked (or cut, as HFLM does) against the window minus `budget`."""
        room = self.max_length - budget
        task = requests[0].task_name if requests else "?"
        if room <= 0:
            raise ConfigError(
                f"task {task} generates up to {budget} tokens, but the model's window is "
                f"{self.max_length} tokens: no room is left for a prompt"
            )
        prompts = [self.tok_encode(req.args[0]) for req in requests]
        longest = max(range(len(prompts)), key=lambda i: len(prompts[i]), default=None)
        # Every rank holds every request, so every rank raises together and none waits for the others.
        if self.long_prompts == "error" and longest is not None and len(prompts[longest]) > room:
            where = (
                f"document {requests[longest].doc_id} of {task} has a {len(prompts[longest])}-token prompt"
            )
            raise ConfigError(
                f"{where}, but the model's window of {self.max_length} tokens leaves {room} beside "
                f"the {budget} generated; lower --few-shot, or pass --long-prompts truncate to keep "
                "each prompt's last tokens as lm_eval --model hf does"
            )
        return [p[-room:] for p in prompts]

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from ds_parrots.models.generate import greedy_generate

        out: dict = {}
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(req.args[1], sort_keys=True, default=str), []).append(i)
        bar = tqdm(
            total=len(requests),
            disable=disable_tqdm or not self.progress,
            desc="generate_until",
            dynamic_ncols=True,
        )
        eos = self.tok.decode([self.tok.eos_id], skip_special_tokens=False)
        for members in groups.values():
            kwargs = normalize_gen_kwargs(requests[members[0]].args[1], 256)
            if kwargs.get("do_sample"):
                raise ConfigError(
                    f"task {requests[members[0]].task_name} samples (do_sample=true); "
                    "ds-parrots-eval decodes greedily only"
                )
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            budget = int(kwargs.pop("max_gen_toks"))
            prompts = self._prompts([requests[i] for i in members], budget)
            order = sorted(
                range(len(members)), key=lambda k: (-len(prompts[k]), requests[members[k]].args[0])
            )
            order = order[self.dp_rank :: self.dp_world]

            def stopped(ids: list[int], until=until) -> bool:
                text = self.tok.decode(ids)
                return any(s and s in text for s in until)

            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                generated = greedy_generate(
                    self.model,
                    [prompts[k] for k in chunk],
                    budget,
                    pad_id=0,
                    eos_id=self.tok.eos_id,
                    device=self._device,
                    sync_ranks=False,
                    should_stop=stopped,
                )
                for k, ids in zip(chunk, generated):
                    out[members[k]] = postprocess_generated_text(self.tok.decode(ids), until, None)
                bar.update(len(chunk) * self.dp_world)
        bar.close()
        results = self._gather(out, len(requests))
        for req, text in zip(requests, results):
            self.cache_hook.add_partial("generate_until", req.args, text)
        return results

    @property
    def tokenizer_name(self) -> str:
        return self.tok.source
