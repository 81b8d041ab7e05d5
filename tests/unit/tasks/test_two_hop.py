import numpy as np
import pytest

from ds_parrots.errors import ConfigError
from ds_parrots.tasks.two_hop import TwoHopConfig, TwoHopTask


def read(task, ex):
    """(edges, s, t, label) read back from the tokens."""
    syms = task.tokenizer.decode(ex.prompt)
    q = syms.index("?")
    edges = [(int(syms[i]), int(syms[i + 1])) for i in range(0, q, 3)]
    answer = task.tokenizer.decode(ex.answer)
    assert answer in (["yes"], ["no"]) and ex.answer[-1] == task.tokenizer.eos_id
    return edges, int(syms[q + 1]), int(syms[q + 2]), answer == ["yes"]


def brute_force_two_hop(edges, s, t, n):
    e = {frozenset(x) for x in edges}
    return any(frozenset((s, w)) in e and frozenset((w, t)) in e for w in range(n) if w not in (s, t))


@pytest.fixture(scope="module")
def task():
    return TwoHopTask(TwoHopConfig(num_test=200))


def test_labels_match_an_independent_check(task):
    labels = []
    for i in range(1500):
        edges, s, t, label = read(task, task.train_example(i))
        assert s != t
        assert label == brute_force_two_hop(edges, s, t, 50)
        labels.append(label)
    assert 0.45 < np.mean(labels) < 0.55


def test_direct_edge_alone_is_no():
    task = TwoHopTask(TwoHopConfig(n_nodes=5, edge_prob=0.5, max_edges=10, num_train=1, num_test=1))
    assert task.tokenizer.decode(task.make_example([(0, 1), (1, 2)], 0, 1, False).answer) == ["no"]
    # and the labels of the sampler agree with the graph on small graphs, where a direct edge is common
    for i in range(300):
        edges, s, t, label = read(task, task._generate(0, i))
        assert label == brute_force_two_hop(edges, s, t, 5)


def test_balanced_even_when_the_raw_distribution_is_not():
    # At p = 0.05 only about 11% of raw queries are "yes"; balancing must still give half and half.
    task = TwoHopTask(TwoHopConfig(edge_prob=0.05, max_edges=100, num_test=400))
    train = [read(task, task.train_example(i))[3] for i in range(2000)]
    test = [read(task, e)[3] for e in task.eval_examples()]
    assert abs(np.mean(train) - 0.5) < 0.045  # 4 standard deviations
    assert abs(np.mean(test) - 0.5) < 0.1


def test_score_reads_the_first_token(task):
    ex = task.eval_examples()[0]
    right, eos = ex.answer[0], task.tokenizer.eos_id
    wrong = task.no_id if right == task.yes_id else task.yes_id
    assert task.score(ex, [right, eos]) == {"accuracy": 1.0}
    assert task.score(ex, [right, 7, 7]) == {"accuracy": 1.0}
    assert task.score(ex, [wrong, eos]) == {"accuracy": 0.0}
    assert task.score(ex, [eos, right]) == {"accuracy": 0.0}
    assert task.score(ex, []) == {"accuracy": 0.0}


def test_summary_and_bounds(task):
    assert task.summary({"accuracy": 0.972, "num_queries": 200}) == (
        "two-hop: accuracy 97.2% on 200 held-out queries (chance 50%), graphs of 50 nodes"
    )
    assert task.max_answer_len == 2
    assert task.max_seq_len == 1 + 3 * 200 + 4 + 2


def test_needs_three_nodes():
    with pytest.raises(ConfigError, match="n_nodes=2"):
        TwoHopConfig(n_nodes=2, edge_prob=0.5, max_edges=1)
