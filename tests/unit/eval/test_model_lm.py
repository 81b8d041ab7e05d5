"""ModelLM: our model + sentencepiece behind the benchmark suites' interface, checked against direct
computation with the model."""

import pytest
import torch

from ds_parrots.config import ModelConfig
from ds_parrots.models import build_model
from ds_parrots_eval.lm import ModelLM
from text_corpus import VOCAB, train_tiny


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    tok = train_tiny(tmp_path_factory.mktemp("tok"))
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=VOCAB,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        num_experts=4,
        top_k=2,
        max_seq_len=64,
        init_std=0.3,
    )
    return ModelLM(build_model(cfg).eval(), tok, batch_size=3)


def direct_loglik(lm, context: str, continuation: str) -> float:
    ctx = lm.tok.encode(context)
    whole = lm.tok.encode(context + continuation)
    assert whole[: len(ctx)] == ctx
    ids = torch.tensor([[lm.tok.eos_id] + whole])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(ids[:, :-1]), dim=-1)[0]
    targets = ids[0, 1:]
    return float(logp[len(ctx) :, :].gather(1, targets[len(ctx) :, None]).sum())


def test_loglikelihood_is_the_sum_over_continuation_tokens(lm):
    reqs = [
        ("The parrot said", " hello"),
        ("A graph of", " two paths and a book"),
        ("Memory", " is"),
        ("The expert", " mixture of the phone book number"),
        ("One", " two"),
    ]
    got = lm.loglikelihood(reqs)
    for (c, x), (ll, n) in zip(reqs, got):
        assert n == len(lm.tok.encode(c + x)) - len(lm.tok.encode(c))
        assert ll == pytest.approx(direct_loglik(lm, c, x), abs=1e-4)
    # Batching and padding do not change a request's score.
    lm1 = ModelLM(lm.model, lm.tok, batch_size=1)
    assert [ll for ll, _ in lm1.loglikelihood(reqs)] == pytest.approx([ll for ll, _ in got], abs=1e-4)


def test_trailing_space_of_the_context_moves_to_the_continuation(lm):
    (a, na), (b, nb) = lm.loglikelihood([("The parrot said ", "hello"), ("The parrot said", " hello")])
    assert a == pytest.approx(b, abs=1e-5) and na == nb


def test_overlong_context_keeps_the_continuation(lm):
    long_ctx = " ".join(["the parrot"] * 200)
    ((ll, n),) = lm.loglikelihood([(long_ctx, " said hello")])
    assert n == len(lm.tok.encode(long_ctx + " said hello")) - len(lm.tok.encode(long_ctx)) and ll < 0


def test_generate_is_greedy_and_cut_at_stop_strings(lm):
    prompts = ["The parrot", "A graph of two", "Memory"]
    free = lm.generate(prompts, max_new_tokens=12, stop=[])
    # Greedy: the generated text is the argmax continuation, reproducible token by token.
    for p, text in zip(prompts, free):
        ids = [lm.tok.eos_id] + lm.tok.encode(p)
        out = []
        for _ in range(12):
            with torch.no_grad():
                nxt = int(lm.model(torch.tensor([ids]))[0, -1].argmax())
            if nxt == lm.tok.eos_id:
                break
            ids.append(nxt)
            out.append(nxt)
        assert text == lm.tok.decode(out)
    stop = free[0][len(free[0]) // 2 : len(free[0]) // 2 + 1] or "e"
    cut = lm.generate(prompts[:1], max_new_tokens=12, stop=[stop])[0]
    assert stop not in cut and free[0].startswith(cut)
