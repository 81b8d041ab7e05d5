"""The theory companion (length-2 path): are two query vertices joined by a path of exactly two edges?

The paper proves that a one-layer dense transformer of width about |V| decides it while an MoE needs a
width growing with |V| whatever its expert count. Prompt `<bos> u v , ... ? s t :` (see graphs.py),
answer `yes <eos>` when some w has edges s-w and w-t, else `no <eos>`. A direct edge s-t is irrelevant.

Labels are balanced by construction: each example first draws its label (a fair coin), then draws
(graph, query) pairs until one has that label, which samples exactly the task distribution conditioned on
the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ds_parrots.errors import ConfigError
from ds_parrots.tasks.base import Example
from ds_parrots.tasks.graphs import (
    MAX_TRIES,
    GraphTask,
    GraphTaskConfig,
    adjacency_matrix,
    prompt_ids,
    prompt_len_bound,
    random_pair,
    sample_edges,
)

YES, NO = "yes", "no"


@dataclass
class TwoHopConfig(GraphTaskConfig):
    """Length-2 path decision on G(n_nodes, edge_prob), half yes and half no."""

    edge_prob: float = 0.12
    """Probability of each undirected edge (ours: 0.12). P(no length-2 path) = (1 - p^2)^(n-2) is 0.50 at 50
    nodes, so both labels are as common in the raw distribution and the balancing rejects few samples."""
    max_edges: int = 200
    """Cap on the edge count (graphs above it are resampled) so that max_seq_len is a true bound
    (ours: 200, 4.7 standard deviations above the mean 147 at the defaults; rejects 3.4e-6 of graphs)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_nodes < 3:
            raise ConfigError(f"n_nodes={self.n_nodes} must be >= 3 (a length-2 path needs a third vertex)")


def has_two_hop(adj: np.ndarray, u: int, v: int) -> bool:
    """Whether some vertex is a neighbour of both u and v (adjacency matrix without self-loops, so that vertex
    differs from u and v)."""
    return bool((adj[u] & adj[v]).any())


class TwoHopTask(GraphTask):
    name = "two-hop"

    def __init__(self, cfg: TwoHopConfig) -> None:
        super().__init__(cfg, extra_symbols=(YES, NO))
        self.yes_id, self.no_id = self.tokenizer.encode((YES, NO))
        self.max_answer_len = 2  # yes/no, <eos>
        self.max_seq_len = prompt_len_bound(cfg.max_edges) + self.max_answer_len

    def _sample(self, rng: np.random.Generator) -> Example:
        cfg = self.cfg
        want = bool(rng.random() < 0.5)
        for _ in range(MAX_TRIES):
            edges = sample_edges(rng, cfg.n_nodes, cfg.edge_prob, cfg.max_edges)
            s, t = random_pair(rng, cfg.n_nodes)
            if has_two_hop(adjacency_matrix(cfg.n_nodes, edges), s, t) == want:
                return self.make_example(edges, s, t, want)
        raise RuntimeError(
            f"no {'yes' if want else 'no'} query in {MAX_TRIES} graphs of G({cfg.n_nodes}, "
            f"{cfg.edge_prob}); move edge_prob towards sqrt(1 - 0.5^(1/(n_nodes-2)))"
        )

    def make_example(self, edges, source: int, target: int, label: bool) -> Example:
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        source, target = int(source), int(target)
        return Example(
            prompt=prompt_ids(edges, source, target, self.tokenizer),
            answer=[self.yes_id if label else self.no_id, self.tokenizer.eos_id],
            meta={"edges": edges, "source": source, "target": target, "label": label},
        )

    def score(self, example: Example, generated) -> dict[str, float]:
        ids = [int(x) for x in generated]
        return {"accuracy": float(bool(ids) and ids[0] == example.answer[0])}

    def summary(self, metrics: dict[str, float]) -> str:
        """`metrics` holds the averaged scores; an optional "num_queries" key is the number scored."""
        n = int(metrics.get("num_queries", self.cfg.num_test))
        return (
            f"{self.name}: accuracy {100 * metrics['accuracy']:.1f}% on {n} held-out queries "
            f"(chance 50%), graphs of {self.cfg.n_nodes} nodes"
        )
