import itertools
import re
from collections import deque

import numpy as np
import pytest

from ds_parrots.errors import ConfigError
from ds_parrots.tasks.graphs import TRAIN_STREAM
from ds_parrots.tasks.shortest_path import ShortestPathConfig, ShortestPathTask
from ds_parrots.tasks.two_hop import TwoHopConfig, TwoHopTask


def parse(task, prompt):
    """(edges, s, t) read back from the prompt's symbols, independently of the task's own helpers."""
    syms = task.tokenizer.decode(prompt)
    q = syms.index("?")
    triples = [syms[i : i + 3] for i in range(0, q, 3)]
    assert all(t[2] == "," for t in triples) and syms[q + 3] == ":" and len(syms) == q + 4
    return [(int(u), int(v)) for u, v, _ in triples], int(syms[q + 1]), int(syms[q + 2])


def all_shortest_paths(edges, s, t):
    nbrs = {}
    for u, v in edges:
        nbrs.setdefault(u, set()).add(v)
        nbrs.setdefault(v, set()).add(u)
    dist = {t: 0}
    queue = deque([t])
    while queue:
        u = queue.popleft()
        for w in nbrs.get(u, ()):
            if w not in dist:
                dist[w] = dist[u] + 1
                queue.append(w)
    paths, stack = [], [[s]]
    while stack:
        p = stack.pop()
        if p[-1] == t:
            paths.append(p)
            continue
        stack += [p + [w] for w in nbrs[p[-1]] if dist.get(w) == dist[p[-1]] - 1]
    return paths


def ids(task, path):
    return task.tokenizer.encode([str(v) for v in path]) + [task.tokenizer.eos_id]


@pytest.fixture(scope="module")
def task():
    return ShortestPathTask(ShortestPathConfig(num_test=200))


def test_answer_is_the_smallest_shortest_path(task):
    lengths = set()
    for i in range(300):
        ex = task.train_example(i)
        edges, s, t = parse(task, ex.prompt)
        path = [int(x) for x in task.tokenizer.decode(ex.answer)]
        assert ex.answer[-1] == task.tokenizer.eos_id
        paths = all_shortest_paths(edges, s, t)
        assert path == min(paths)
        assert s != t
        lengths.add(len(path) - 1)
    assert len(lengths) >= 4  # the default graphs give varied distances, not just 1-2 hops


# A handmade graph: four shortest 0 -> 6 paths of 3 edges; edges listed in mixed orientation.
HAND_EDGES = [(1, 0), (0, 2), (3, 0), (4, 1), (2, 4), (5, 3), (6, 4), (5, 6), (6, 7), (2, 5), (4, 5)]


@pytest.fixture(scope="module")
def hand():
    task = ShortestPathTask(
        ShortestPathConfig(n_nodes=8, edge_prob=0.5, max_edges=28, num_train=10, num_test=2)
    )
    return task, task.make_example(HAND_EDGES, 0, 6)


def test_every_shortest_path_is_accepted(hand):
    task, ex = hand
    paths = all_shortest_paths(HAND_EDGES, 0, 6)
    assert sorted(paths) == [[0, 1, 4, 6], [0, 2, 4, 6], [0, 2, 5, 6], [0, 3, 5, 6]]
    for p in paths:
        assert task.score(ex, ids(task, p)) == {
            "valid_shortest": 1.0,
            "exact_match": float(p == [0, 1, 4, 6]),
        }
    assert task.score(ex, ids(task, [0, 1, 4, 6]) + [3, 3])["exact_match"] == 1.0  # after <eos> is ignored


@pytest.mark.parametrize(
    "path",
    [
        [0, 1, 5, 6],  # 1-5 is not an edge
        [0, 1, 4, 5, 6],  # a valid walk, one edge too long
        [0, 1, 4, 2, 5, 6],
        [1, 4, 5, 6],  # wrong start (valid edges, shortest length)
        [0, 1, 4, 5],  # wrong end (valid edges, shortest length)
        [0, 1, 4],
        [0, 6],  # not an edge, too short
        [0],
    ],
)
def test_wrong_paths_are_rejected(hand, path):
    task, ex = hand
    assert task.score(ex, ids(task, path)) == {"valid_shortest": 0.0, "exact_match": 0.0}


def test_malformed_generations_score_zero(hand):
    task, ex = hand
    tok = task.tokenizer
    good = ids(task, [0, 1, 4, 6])
    comma, colon = tok.encode([",", ":"])
    for gen in (
        [],
        [tok.eos_id],
        good[:-1],
        [comma] + good,
        good[:2] + [comma] + good[2:],
        good[:1] + [tok.pad_id] + good[1:],
        good[:1] + [tok.bos_id] + good[1:],
        good[:1] + [999] + good[1:],
        [-5, 1000, tok.eos_id],
        np.array(good[:-1] + [colon, tok.eos_id]),
    ):
        assert task.score(ex, gen) == {"valid_shortest": 0.0, "exact_match": 0.0}


def test_random_garbage_never_raises(task):
    ex = task.eval_examples()[0]
    rng = np.random.default_rng(0)
    for _ in range(200):
        gen = rng.integers(-2, task.tokenizer.vocab_size + 3, size=rng.integers(0, 60)).tolist()
        assert set(task.score(ex, gen).values()) <= {0.0, 1.0}


def test_eval_answers_score_full_marks(task):
    for ex in task.eval_examples()[:50]:
        assert task.score(ex, ex.answer) == {"valid_shortest": 1.0, "exact_match": 1.0}
    assert task.summary({"valid_shortest": 0.5, "exact_match": 0.25, "num_queries": 200}) == (
        "shortest-path: valid shortest path 50.0%, exact match 25.0% on 200 held-out graphs of 50 nodes"
    )


def test_edge_order_and_orientation_are_shuffled(task):
    edges, _, _ = parse(task, task.train_example(0).prompt)
    assert edges != sorted(edges)
    assert any(u < v for u, v in edges) and any(u > v for u, v in edges)


# The held-out machinery (graphs.GraphTask) is shared by both graph tasks: tested for both here.
GRAPH_TASKS = [(ShortestPathTask, ShortestPathConfig), (TwoHopTask, TwoHopConfig)]


@pytest.mark.parametrize("task_type,config_type", GRAPH_TASKS)
def test_examples_are_pure_functions_of_seed_and_index(task_type, config_type):
    a = task_type(config_type(num_test=20))
    b = task_type(config_type(num_test=20))
    c = task_type(config_type(num_test=20, seed=1))
    from_a = {i: a.train_example(i).prompt for i in (5, 0, 3)}
    from_b = {i: b.train_example(i).prompt for i in (3, 5, 0)}  # another order: no hidden state
    assert from_a == from_b
    assert [e.answer for e in a.eval_examples()] == [e.answer for e in b.eval_examples()]
    assert [a.train_example(i).prompt for i in range(5)] != [c.train_example(i).prompt for i in range(5)]


@pytest.mark.parametrize("task_type,config_type", GRAPH_TASKS)
def test_no_training_example_is_a_test_example(task_type, config_type):
    # 4 nodes: few distinct examples, so training draws hit the test set and must be regenerated.
    task = task_type(config_type(n_nodes=4, edge_prob=0.5, max_edges=6, num_train=3000, num_test=40))
    test = {tuple(e.prompt) for e in task.eval_examples()}
    collided = [i for i in range(3000) if tuple(task._generate(TRAIN_STREAM, i).prompt) in test]
    assert collided  # the check below would fail without the regeneration
    train = [task.train_example(i) for i in range(3000)]
    assert not test & {tuple(e.prompt) for e in train}
    assert train[collided[0]].prompt == task_type(task.cfg).train_example(collided[0]).prompt  # still pure


@pytest.mark.parametrize("task_type,config_type", GRAPH_TASKS)
def test_default_train_and_test_do_not_overlap(task_type, config_type):
    task = task_type(config_type())
    test = {tuple(e.prompt) for e in task.eval_examples()}
    assert len(test) == 1000
    assert not test & {tuple(task.train_example(i).prompt) for i in range(2000)}


@pytest.mark.parametrize("task_type,config_type", GRAPH_TASKS)
def test_max_seq_len_is_a_true_bound(task_type, config_type):
    # max_edges at the 99% quantile of G(20, 0.2): without the cap about 1% of graphs would exceed it.
    cfg = config_type(n_nodes=20, edge_prob=0.2, max_edges=52, num_train=3000, num_test=10)
    task = task_type(cfg)
    examples = [task.train_example(i) for i in range(3000)]
    assert max(len(parse(task, e.prompt)[0]) for e in examples) <= 52
    assert max(len(e.prompt) + len(e.answer) for e in examples) <= task.max_seq_len
    assert max(len(e.answer) for e in examples) <= task.max_answer_len
    assert task.max_seq_len == 1 + 3 * 52 + 4 + task.max_answer_len


def test_train_example_index_range(task):
    with pytest.raises(IndexError):
        task.train_example(task.train_size())
    assert task.train_size() == 1_000_000


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"max_edges": 80}, "max_edges=80 would reject"),
        ({"edge_prob": 0.0}, "edge_prob"),
        ({"n_nodes": 1}, "n_nodes"),
        ({"num_test": 0}, "num_test"),
    ],
)
def test_config_errors_name_the_field(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        ShortestPathConfig(**kw)


def test_cap_rejection_rate_in_error_message_is_honest():
    # The check's binomial tail must agree with simulation: G(50, 0.06) has > 80 edges in about 20% of graphs.
    share = (np.random.default_rng(0).binomial(1225, 0.06, size=20000) > 80).mean()
    with pytest.raises(ConfigError) as err:
        ShortestPathConfig(max_edges=80)
    stated = float(re.search(r"reject ([\d.]+)%", str(err.value)).group(1)) / 100
    assert abs(stated - share) < 0.015


def test_pairs_are_connected_and_distinct(task):
    for ex in (task.train_example(i) for i in range(200)):
        edges, s, t = parse(task, ex.prompt)
        assert s != t and all_shortest_paths(edges, s, t)


def test_queries_cover_all_vertices():
    task = ShortestPathTask(ShortestPathConfig(num_test=10))
    seen = set(
        itertools.chain.from_iterable(parse(task, task.train_example(i).prompt)[1:] for i in range(500))
    )
    assert seen == set(range(50))
