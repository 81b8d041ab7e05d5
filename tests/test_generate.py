import torch

from ds_parrots.generate import evaluate_task, greedy_generate
from ds_parrots.tasks import build_task
from ds_parrots.tasks.phonebook import PhonebookConfig

V, EOS, PAD = 12, 2, 0


def successor_model(input_ids: torch.Tensor) -> torch.Tensor:
    """A causal 'model' whose next token is the current token + 1, and <eos> after token 9."""
    nxt = torch.where(input_ids >= 9, torch.full_like(input_ids, EOS), input_ids + 1)
    return torch.nn.functional.one_hot(nxt, V).float()


def test_greedy_generate_right_padded_prompts_and_eos():
    out = greedy_generate(successor_model, [[1, 5], [1, 3, 4, 7]], max_new_tokens=10, pad_id=PAD, eos_id=EOS,
                          device="cpu")
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
                if tuple(seq[:len(prompt)]) == prompt:
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
