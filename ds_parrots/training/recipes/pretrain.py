"""Pre-train on a mixture of token files: check the data before launch, train with the shared loop,
report validation loss / perplexity on held-out sequences of the training distribution, and write
results.json with the realized mixture proportions. Every rank runs `pretrain`."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from ds_parrots.config import DataConfig, ModelConfig, RunConfig
from ds_parrots.config.model import fit_sequence_length
from ds_parrots.data.file_checks import check_token_ids
from ds_parrots.data.indexed import IndexedDataset
from ds_parrots.data.mixture import Mixture, load_mixture
from ds_parrots.data.sampler import PretrainBatches, PretrainSamples, to_batch
from ds_parrots.errors import ConfigError
from ds_parrots.parallel.ds_config import micro_batch_size
from ds_parrots.parallel.sharding import lockstep_batches
from ds_parrots.training.callbacks import Evaluation
from ds_parrots.training.recipes.synthetic import model_tag
from ds_parrots.training.results import run_results, write_results
from ds_parrots.training.setup import (
    build_trainer,
    check_before_launch,
    experts_per_rank,
    open_run,
    run_config_dict,
)
from ds_parrots.training.step import lm_loss


def pretrain_model(model: ModelConfig, data: DataConfig, max_seq_len_given: bool = False) -> ModelConfig:
    """The model as pre-trained: sized to --data.seq-len unless --model.max-seq-len was given."""
    return fit_sequence_length(model, data.seq_len, max_seq_len_given, f"--data.seq-len={data.seq_len}")


def tokenizer_vocab(data: DataConfig, model: ModelConfig):
    """The tokenizer's vocabulary size when --data.tokenizer is given (checked against the model's), else None.
    A model vocabulary larger than the tokenizer's is fine (padding); ids past the model's are caught per batch."""
    if data.tokenizer is None:
        return None
    from ds_parrots.data.tokenizer import SentencePieceTokenizer, check_model_vocab

    vocab = SentencePieceTokenizer(data.tokenizer).vocab_size
    check_model_vocab(model.vocab_size, vocab, data.tokenizer)
    return vocab


def build_samples(data: DataConfig, model: ModelConfig, seed: int) -> tuple[Mixture, PretrainSamples]:
    if not data.mixture:
        raise ConfigError(
            "pretrain needs --data.mixture (a mixture JSON file, or a shipped name such as "
            "natural_language); see README 'Pre-training data'"
        )
    mixture = load_mixture(data.mixture, data.data_root)
    vocab = tokenizer_vocab(data, model)
    datasets = [IndexedDataset(src.path) for src in mixture.sources]
    for ds in datasets:
        if vocab is not None:
            ds.check_vocab(vocab)
        check_token_ids(ds.bin_path, ds.tokens, model.vocab_size)
    samples = PretrainSamples(
        [s.name for s in mixture.sources],
        [d.tokens for d in datasets],
        [s.weight for s in mixture.sources],
        data.seq_len,
        seed,
        data.val_sequences,
    )
    return mixture, samples


class CheckedBatches(PretrainBatches):
    """PretrainBatches that refuse token ids the embedding cannot hold (instead of an index error deep
    inside the model, or silent garbage on a GPU): past the prefix of each file checked before launch."""

    def __init__(self, *args, vocab_size: int, **kw):
        super().__init__(*args, **kw)
        self.vocab_size = vocab_size

    def step_batches(self, step: int):
        out = super().step_batches(step)
        for x, y in out:
            low = int(torch.minimum(x.min(), y.min()))
            if low < 0:
                raise ConfigError(
                    f"token id {low} at step {step} is negative: a token file stores signed ids that wrapped "
                    "past its dtype's maximum (a dtype too small for its tokenizer); run 'ds-parrots prepare' "
                    "again, which picks uint16 or int32 from the vocabulary size"
                )
            top = int(torch.maximum(x.max(), y.max()))
            if top >= self.vocab_size:
                raise ConfigError(
                    f"token id {top} at step {step} is >= --model.vocab-size={self.vocab_size}: the "
                    "data was tokenized with a larger vocabulary; set --model.vocab-size to the "
                    "tokenizer's size (or more)"
                )
        return out


@torch.no_grad()
def validation_loss(
    module, samples: PretrainSamples, device, batch_size: int, rank: int, world_size: int
) -> dict:
    """Mean next-token loss over the validation sequences, sharded over ranks. Every rank runs the same
    number of forwards (ZeRO-3 gathers and MoE all-to-alls are collective): a rank short of sequences
    repeats one with weight 0."""
    items = samples.validation()
    if not items:
        return {}
    total = torch.zeros(2, dtype=torch.float64)
    for chunk in lockstep_batches(items, rank, world_size, batch_size):
        x, y = to_batch(samples.read_validation(chunk or items[:1]))
        loss = lm_loss(module(x.to(device)), y.to(device), reduction="sum")
        if chunk:
            total += torch.tensor([loss.item(), y.numel()], dtype=torch.float64)
    dist.all_reduce(total)
    mean = float(total[0] / total[1])
    return {"val_loss": mean, "val_ppl": math.exp(min(mean, 50.0)), "val_tokens": int(total[1])}


def mixture_report(mixture: Mixture, samples: PretrainSamples, num_samples: int) -> dict:
    draws = samples.draws(num_samples)
    return {
        src.name: {
            "weight": w,
            "realized": int(n) / max(num_samples, 1),
            "samples": int(n),
            "epochs": int(n) / slots.num_train,
            "train_sequences": slots.num_train,
            "val_sequences": slots.num_val,
        }
        for src, w, n, slots in zip(mixture.sources, mixture.weights, draws, samples.sources)
    }


def pretrain(run: RunConfig, data: DataConfig) -> dict:
    train = run.train
    model_cfg = pretrain_model(run.model, data, getattr(run, "max_seq_len_given", False))
    mixture, samples = build_samples(data, model_cfg, train.seed)
    run_dir = train.run_dir(f"pretrain-{mixture.name}-{model_tag(model_cfg, run.moe)}-s{train.seed}")
    config = run_config_dict(run, model_cfg, task_name="pretrain")
    check_before_launch(model_cfg, run, run_dir, config)

    rank, world_size, log = open_run(run_dir, config, run)
    try:
        batches = CheckedBatches(
            samples,
            train.global_batch,
            micro_batch_size(train, world_size),
            world_size,
            rank,
            vocab_size=model_cfg.vocab_size,
        )

        def evaluate(step: int) -> dict:
            metrics = validation_loss(
                trainer.engine.module, samples, trainer.engine.device, train.eval_batch, rank, world_size
            )
            if metrics:
                log.info(
                    f"step {step}: validation loss {metrics['val_loss']:.4f}, perplexity "
                    f"{metrics['val_ppl']:.2f} ({metrics['val_tokens']:,} tokens)"
                )
            return metrics

        def client_state(step: int) -> dict:
            return {"data": {"mixture": mixture.name, "samples": step * train.global_batch}}

        trainer = build_trainer(model_cfg, run, run_dir, log, world_size, batches, evaluate, client_state)
        experts = experts_per_rank(trainer)
        planned = mixture_report(mixture, samples, train.steps * train.global_batch)
        log.info(
            f"data: mixture {mixture.name} ({mixture.file}), sequences of {data.seq_len} tokens, "
            f"{train.steps:,} steps x {train.global_batch} = {train.steps * train.global_batch * data.seq_len:,} "
            f"tokens; run dir {run_dir}"
        )
        for name, r in planned.items():
            log.info(
                f"  {name}: weight {r['weight']:.3f}, {r['train_sequences']:,} train + {r['val_sequences']:,} "
                f"validation sequences, {r['epochs']:.2f} epochs planned"
                + (" (repeats data)" if r["epochs"] > 1 else "")
            )
        step = trainer.fit()
        realized = mixture_report(mixture, samples, step * train.global_batch)
        results = run_results(
            trainer,
            run,
            model_cfg,
            experts,
            task="pretrain",
            step=step,
            metrics=trainer.callback_of(Evaluation).metrics,
            mixture=realized,
        )
        if rank == 0:
            shares = ", ".join(
                f"{n} {r['realized']:.3f} (weight {r['weight']:.3f}, {r['epochs']:.2f} epochs)"
                for n, r in realized.items()
            )
            log.info(f"mixture realized: {shares}")
        write_results(trainer, results, model_cfg)
        return results
    finally:
        log.close()
