"""What the two graph tasks share: G(n, p) sampling, BFS, the prompt encoding and held-out generation.

Prompt layout (both tasks): `<bos> u1 v1 , u2 v2 , ... uk vk , ? s t :` with one token per node id
("0" .. "n-1"). The edge order is a random permutation and each edge's orientation is a coin flip,
so the model must treat the list as a set of undirected edges. Every edge ends with "," so an edge
is found by its terminator, not by the parity of its position (which attention finds hard).

Examples are addressed, not iterated: train example i is a pure function of (seed, i) through
`np.random.default_rng([seed, stream, i, attempt])`. The test set is examples 0 .. num_test-1 of
its own stream; a train example whose prompt equals a test prompt is regenerated with the next
attempt counter, so no training example is a test example and train_example(i) stays pure.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ds_parrots.data.tokenizer import SymbolTokenizer
from ds_parrots.errors import ConfigError
from ds_parrots.tasks.base import Example

EDGE_END, QUERY, ANSWER = ",", "?", ":"
NODE_OFFSET = 3  # node v has token id NODE_OFFSET + v: node symbols follow <pad>, <bos>, <eos>
TRAIN_STREAM, TEST_STREAM = 0, 1
MAX_TRIES = 10_000  # rejection-sampling tries for one example before the config is declared unusable
MAX_REJECT_RATE = 0.01  # largest share of graphs that the max_edges cap may reject


@dataclass
class GraphTaskConfig:
    """Fields shared by the graph tasks (random G(n_nodes, edge_prob) graphs, addressed examples)."""

    n_nodes: int = 50
    """Vertices per graph; one token per vertex (paper: 50)."""
    edge_prob: float = 0.06
    """Probability of each of the n(n-1)/2 undirected edges (independent)."""
    max_edges: int = 110
    """Cap on the edge count so that max_seq_len is a true bound: graphs with more edges are rejected and
    resampled. Must reject at most 1% of G(n_nodes, edge_prob) graphs (the check names the value to use)."""
    num_train: int = 1_000_000
    """Training examples (paper: 1e6)."""
    num_test: int = 1_000
    """Held-out test examples (paper: 1e3); no training example equals one of them."""
    seed: int = 0
    """Seed of every graph and query (train and test)."""

    def __post_init__(self) -> None:
        for name in ("max_edges", "num_train", "num_test"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_nodes < 2:
            raise ConfigError(f"n_nodes={self.n_nodes} must be >= 2 (a query needs two distinct vertices)")
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed} must be >= 0")
        if not 0.0 < self.edge_prob <= 1.0:
            raise ConfigError(f"edge_prob={self.edge_prob} must be in (0, 1]")
        pairs = self.n_nodes * (self.n_nodes - 1) // 2
        tails = binomial_tails(pairs, self.edge_prob)
        rejected = float(tails[min(self.max_edges, pairs)])
        if rejected > MAX_REJECT_RATE:
            need = int(np.argmax(tails <= 1e-4))
            raise ConfigError(
                f"max_edges={self.max_edges} would reject {rejected:.1%} of G({self.n_nodes}, {self.edge_prob}) "
                f"graphs (mean {pairs * self.edge_prob:.1f} edges); raise max_edges to {need} or lower edge_prob"
            )


def binomial_tails(n: int, p: float) -> np.ndarray:
    """t[m] = P(X > m) for X ~ Binomial(n, p), m = 0 .. n (pmf built in log space by its ratio recursion)."""
    if p >= 1.0:
        tails = np.ones(n + 1)
        tails[n] = 0.0
        return tails
    k = np.arange(n, dtype=np.float64)
    log_pmf = np.concatenate([[n * math.log1p(-p)], np.log((n - k) / (k + 1)) + math.log(p) - math.log1p(-p)])
    pmf = np.exp(np.cumsum(log_pmf))
    tails = np.cumsum(pmf[::-1])[::-1]  # tails[m] = P(X >= m)
    return np.minimum(np.append(tails[1:], 0.0), 1.0)


def graph_tokenizer(n_nodes: int, extra: tuple[str, ...] = ()) -> SymbolTokenizer:
    """Node tokens "0" .. "n-1" (ids NODE_OFFSET + v), then the separators, then `extra` symbols."""
    return SymbolTokenizer(tuple(str(v) for v in range(n_nodes)) + (EDGE_END, QUERY, ANSWER) + tuple(extra))


@lru_cache(maxsize=8)
def _upper_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def sample_edges(rng: np.random.Generator, n_nodes: int, edge_prob: float, max_edges: int) -> np.ndarray:
    """Edges of a G(n, p) graph with at most max_edges edges (rejection), as an (E, 2) int array with
    a random order and random orientation."""
    iu, ju = _upper_pairs(n_nodes)
    for _ in range(MAX_TRIES):
        keep = rng.random(iu.size) < edge_prob
        if keep.sum() <= max_edges:
            break
    else:  # unreachable for a validated config (at most 1% rejected)
        raise RuntimeError(
            f"no G({n_nodes}, {edge_prob}) graph with <= {max_edges} edges in {MAX_TRIES} tries"
        )
    edges = np.stack([iu[keep], ju[keep]], axis=1)[rng.permutation(int(keep.sum()))]
    flip = rng.random(len(edges)) < 0.5
    edges[flip] = edges[flip, ::-1]
    return edges


def adjacency(n_nodes: int, edges) -> list[list[int]]:
    """Neighbour lists of an undirected graph (in edge order, unsorted)."""
    adj: list[list[int]] = [[] for _ in range(n_nodes)]
    for u, v in edges:
        adj[u].append(v)
        adj[v].append(u)
    return adj


def adjacency_matrix(n_nodes: int, edges) -> np.ndarray:
    """Symmetric boolean adjacency matrix of an undirected graph."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    a = np.zeros((n_nodes, n_nodes), dtype=bool)
    a[e[:, 0], e[:, 1]] = True
    a[e[:, 1], e[:, 0]] = True
    return a


def bfs_distances(adj: list[list[int]], source: int) -> list[int]:
    """Hop distance of every vertex from `source` (-1 when unreachable)."""
    dist = [-1] * len(adj)
    dist[source] = 0
    queue = deque([source])
    while queue:
        u = queue.popleft()
        for w in adj[u]:
            if dist[w] < 0:
                dist[w] = dist[u] + 1
                queue.append(w)
    return dist


def prompt_ids(edges, source: int, target: int, tokenizer: SymbolTokenizer) -> list[int]:
    """`<bos> u v , ... ? s t :` as ids, edges in the given order and orientation."""
    end, query, answer = tokenizer.encode((EDGE_END, QUERY, ANSWER))
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    body = np.empty((len(e), 3), dtype=np.int64)
    body[:, :2] = e + NODE_OFFSET
    body[:, 2] = end
    return (
        [tokenizer.bos_id]
        + body.ravel().tolist()
        + [query, NODE_OFFSET + source, NODE_OFFSET + target, answer]
    )


def prompt_len_bound(max_edges: int) -> int:
    """Longest prompt: <bos>, 3 tokens per edge, then `? s t :`."""
    return 1 + 3 * max_edges + 4


def random_pair(rng: np.random.Generator, n_nodes: int) -> tuple[int, int]:
    """A uniform ordered pair of distinct vertices."""
    s, t = rng.choice(n_nodes, size=2, replace=False)
    return int(s), int(t)


def until_eos(generated, eos_id: int) -> list[int] | None:
    """The generated ids before the first <eos>, or None when there is no <eos> (an unfinished answer)."""
    ids = [int(x) for x in generated]
    return ids[: ids.index(eos_id)] if eos_id in ids else None


class GraphTask:
    """Base of the graph tasks: addressed train examples, a fixed test set, and the held-out guarantee.

    Subclasses set `name` and implement `_sample(rng) -> Example`, a draw from the task distribution.
    """

    name = "graph"

    def __init__(self, cfg: GraphTaskConfig, extra_symbols: tuple[str, ...] = ()) -> None:
        self.cfg = cfg
        self.tokenizer = graph_tokenizer(cfg.n_nodes, extra_symbols)
        self._test: list[Example] | None = None
        self._test_keys: frozenset[tuple[int, ...]] = frozenset()

    def _sample(self, rng: np.random.Generator) -> Example:
        raise NotImplementedError

    def _generate(self, stream: int, i: int, attempt: int = 0) -> Example:
        return self._sample(np.random.default_rng([self.cfg.seed, stream, i, attempt]))

    def _build_test(self) -> None:
        if self._test is None:
            self._test = [self._generate(TEST_STREAM, j) for j in range(self.cfg.num_test)]
            self._test_keys = frozenset(tuple(ex.prompt) for ex in self._test)

    def train_size(self) -> int:
        return self.cfg.num_train

    def train_example(self, i: int) -> Example:
        if not 0 <= i < self.cfg.num_train:
            raise IndexError(f"train example {i} is out of range [0, {self.cfg.num_train})")
        self._build_test()
        for attempt in range(MAX_TRIES):
            ex = self._generate(TRAIN_STREAM, i, attempt)
            if tuple(ex.prompt) not in self._test_keys:
                return ex
        raise RuntimeError(
            f"train example {i} equals a test example in {MAX_TRIES} attempts: this config has too "
            "few distinct examples; raise n_nodes or lower num_test"
        )

    def eval_examples(self) -> list[Example]:
        self._build_test()
        return list(self._test)
