import torch

from ds_parrots.models.generate import greedy_generate
from ds_parrots.tasks import build_task
from ds_parrots.tasks.evaluate import evaluate_task
from ds_parrots.tasks.phonebook import PhonebookConfig

V, EOS, PAD = 12, 2, 0


def successor_model(input_ids: torch.Tensor) -> torch.Tensor:
    """A causal 'model' whose next token is the current token + 1, and <eos> after token 9."""
    nxt = torch.where(input_ids >= 9, torch.full_like(input_ids, EOS), input_ids + 1)
    return torch.nn.functional.one_hot(nxt, V).float()


def test_greedy_generate_right_padded_prompts_and_eos():
    out = greedy_generate(
        successor_model, [[1, 5], [1, 3, 4, 7]], max_new_tokens=10, pad_id=PAD, eos_id=EOS, device="cpu"
    )
    assert out == [[6, 7, 8, 9, EOS], [8, 9, EOS]]


def test_greedy_generate_stops_at_budget():
    out = greedy_generate(successor_model, [[3]], max_new_tokens=2, pad_id=PAD, eos_id=EOS, device="cpu")
    assert out == [[4, 5]]


def test_evaluate_scores_an_oracle_and_a_wrong_model():
    task = build_task("phonebook", PhonebookConfig(book_size=30, num_queries=10))
    answers = {tuple(e.prompt): e.answer for e in task.eval_examples()}

    def oracle(input_ids):
        logits = torch.zeros(*input_ids.shape, task.tokenizer.vocab_size)
        for row in range(input_ids.shape[0]):
            seq = input_ids[row].tolist()
            for prompt, answer in answers.items():
                if tuple(seq[: len(prompt)]) == prompt:
                    for t in range(len(prompt) - 1, min(len(seq), len(prompt) + len(answer) - 1)):
                        logits[row, t, answer[t - len(prompt) + 1]] = 1.0
        return logits

    metrics = evaluate_task(oracle, task, "cpu", batch_size=4)
    assert metrics == {"exact_match": 1.0, "num_queries": 10}
    wrong = evaluate_task(successor_model_for(task), task, "cpu", batch_size=3, max_eval=5)
    assert wrong == {"exact_match": 0.0, "num_queries": 5}


def successor_model_for(task):
    v = task.tokenizer.vocab_size

    def model(input_ids):
        return torch.nn.functional.one_hot(torch.full_like(input_ids, task.tokenizer.eos_id), v).float()

    return model


def _random_model(num_experts: int):
    from ds_parrots.config import ModelConfig
    from ds_parrots.models import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=V,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        num_experts=num_experts,
        top_k=2,
        max_seq_len=32,
        init_std=0.5,
    )  # large weights: varied, confident argmaxes
    return build_model(cfg).eval()


def test_kv_cache_decoding_equals_full_recomputation_for_uneven_prompts():
    prompts = [[1, 5], [1, 3, 4, 7, 8, 3], [4], [6, 6, 6]]
    for experts in (1, 4):
        model = _random_model(experts)
        cached = greedy_generate(model, prompts, max_new_tokens=12, pad_id=PAD, eos_id=EOS, device="cpu")
        full = greedy_generate(
            lambda ids: model(ids),  # noqa: B023 (called inside this iteration)
            prompts,
            max_new_tokens=12,
            pad_id=PAD,
            eos_id=EOS,
            device="cpu",  # noqa: B023
        )
        assert cached == full
        assert len({tuple(c) for c in cached}) > 1  # the rows really differ


def test_kv_cache_logits_match_a_full_forward_pass():
    model = _random_model(4)
    ids = torch.randint(3, V, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache(torch.zeros(2, dtype=torch.long), 9)
        parts = [model(ids[:, :5], cache)] + [model(ids[:, t : t + 1], cache) for t in range(5, 9)]
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-4)  # logits of scale ~9
