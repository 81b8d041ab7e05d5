"""Side concerns of a run, attached to the Trainer as callbacks."""

from ds_parrots.training.callbacks.base import Callback
from ds_parrots.training.callbacks.checkpointing import Checkpointing
from ds_parrots.training.callbacks.evaluation import Evaluation
from ds_parrots.training.callbacks.expert_load import ExpertLoad
from ds_parrots.training.callbacks.logging import Logging
from ds_parrots.training.callbacks.throughput import Throughput

__all__ = ["Callback", "Checkpointing", "Evaluation", "ExpertLoad", "Logging", "Throughput"]
