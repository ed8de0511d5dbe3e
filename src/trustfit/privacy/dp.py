"""DP-SGD on the training loop, built on Opacus: per-example clipping (book-keeping, bk.py, by
default; Opacus' ghost clipping on request), Gaussian noise (Opacus' DP optimizer), Poisson
sampling of logical batches split into physical ones (Opacus' BatchSplittingSampler, the heart of
its BatchMemoryManager), and an accountant whose history is saved in every checkpoint.

The privacy unit is one training example (a CoNLL sentence, a classification row): under DP each
example is one model input (no packing, no document context, no windows), the sampler is
Poisson as the accountants assume, and options that use the training data outside the clipped,
noised gradients (class weights, augmentation, adversarial steps) are refused."""

from __future__ import annotations

import inspect
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch

from trustfit.errors import ConfigError, DataError
from trustfit.privacy.accounting import epsilon_spent, noise_for_epsilon, steps_within
from trustfit.train.plugins import Plugin

SAMPLING = "poisson"
CLIPPING = {"bk": "per-example, book-keeping (one backward pass; Bu et al. 2023)",
            "ghost": "per-example, Opacus ghost clipping (two backward passes)"}


class PoissonSampler:
    """Logical batches with every example drawn independently with probability `sample_rate`
    (Opacus' UniformWithReplacementSampler), `steps_per_epoch` = 1 / sample_rate of them an
    epoch; seeded by (seed, epoch) so a resumed run draws the same batches."""

    def __init__(self, n_examples: int, sample_rate: float, seed: int) -> None:
        self.n, self.sample_rate, self.seed = n_examples, sample_rate, seed
        self.steps_per_epoch = max(1, int(1 / sample_rate))
        self.epoch, self.skip = 0, 0

    def num_batches(self, epoch: int) -> int:
        return self.steps_per_epoch

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self):
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        sampler = UniformWithReplacementSampler(num_samples=self.n, sample_rate=self.sample_rate, generator=gen,
                                                steps=self.steps_per_epoch)
        for i, idx in enumerate(sampler):
            if i >= self.skip:
                yield [int(j) for j in idx]


def check_one_input_per_example(features, n_examples: int, max_length: int) -> None:
    """Under DP an example split into several windows would be several records: refuse it."""
    if len(features) != n_examples:
        raise DataError(f"DP training: {len(features) - n_examples} training examples are longer than "
                        f"--max-length {max_length} sub-tokens and would be split into windows (one example must "
                        "be one input for the guarantee): raise --max-length or shorten those examples")


class PrivateParts(NamedTuple):
    """What `PrivateTraining.make_private` returns, whatever the clipping mode."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer


def check_dp_model(model) -> None:
    """Raise a ConfigError naming every trained layer Opacus cannot compute per-example gradients for."""
    from opacus.validators import ModuleValidator

    problems = []
    for name, module in model.named_modules():
        if not any(p.requires_grad for p in module.parameters(recurse=False)):
            continue
        validator = ModuleValidator.VALIDATORS.get(type(module))
        for err in (validator(module) if validator else []):
            problems.append(f"{name or '<root>'} ({type(module).__name__}): {str(err).split('. ')[0]}")
    if problems:
        raise ConfigError("DP training: Opacus cannot train these layers with per-example clipping:\n  - "
                          + "\n  - ".join(problems) + "\n  freeze them (--dp-train no-embeddings, top-N or lora) "
                          "or use a model without them")


def with_explicit_ids(batch: dict, names: list[str], device=None) -> dict:
    """`batch` with position_ids / token_type_ids of shape [B, T] where the model takes them: BERT's
    own buffers are [1, T] (expanded, not copied), and Opacus' per-example norms of the position
    and token-type embeddings need one row per example (a contiguous tensor)."""
    batch = {k: v.to(device) if device is not None else v for k, v in batch.items()}
    b, t = batch["input_ids"].shape
    if "position_ids" in names and "position_ids" not in batch:
        batch["position_ids"] = torch.arange(t, device=batch["input_ids"].device).repeat(b, 1)
    if "token_type_ids" in names and "token_type_ids" not in batch:
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    return batch


def per_example_loss(model, batch: dict) -> torch.Tensor:
    """Each example's loss: the mean over its labelled tokens (NER) or its row loss (classification)."""
    labels = batch["labels"]
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
    if logits.dim() == 2:
        return torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none", ignore_index=-100)
    return token.sum(1) / (labels != -100).sum(1).clamp(min=1)


class PrivateTraining(Plugin):
    """The DP plugin: `sampler` replaces the length-bucketed one, `make_private` wraps the model and
    optimizer, `step` runs one logical batch, and the accountant stops the run at the budget."""

    def __init__(self, cfg, n_examples: int, trained_parameters: int, log_path: Path | None = None,
                 say=print) -> None:
        self.cfg = cfg
        self.delta = cfg.dp_delta
        if not 0 < self.delta < 1 / n_examples:
            raise ConfigError(f"dp_delta: {self.delta:g} must be above 0 and below 1/N = 1/{n_examples} "
                              f"({1 / n_examples:.2g}) for the {n_examples} training examples; a common choice is "
                              f"1/(10 N) = {1 / (10 * n_examples):.1g}")
        if cfg.dp_batch_size > n_examples:
            raise ConfigError(f"dp_batch_size: {cfg.dp_batch_size} is more than the {n_examples} training examples")
        self.sample_rate = cfg.dp_batch_size / n_examples
        self.sampler = PoissonSampler(n_examples, self.sample_rate, cfg.seed)
        self.planned_steps = cfg.max_steps or cfg.epochs * self.sampler.steps_per_epoch
        self.accountant = cfg.dp_accountant
        self.target_epsilon = cfg.dp_epsilon
        self.noise = cfg.dp_noise if cfg.dp_noise is not None else noise_for_epsilon(
            cfg.dp_epsilon, self.delta, self.sample_rate, self.planned_steps, self.accountant)
        self.trained_parameters = trained_parameters
        self.history: list[list[float]] = []  # [noise, sample rate, steps], Opacus' accountant history
        self.epochs: list[dict[str, Any]] = []
        self.allowed_steps: int | None = None
        self.stopped_by_budget = False
        self.log_path, self.say = log_path, say
        # the forward runs through `module`: the model itself (book-keeping hooks) or Opacus' ghost wrapper
        self.module = self.optimizer = self.clipper = None
        self._eps_cache: tuple[int, float] | None = None

    # -- wrapping ---------------------------------------------------------------------------
    def make_private(self, model, optimizer) -> PrivateParts:
        """Attach per-example clipping (book-keeping hooks, or Opacus' ghost-clipping wrapper) and
        wrap the optimizer in Opacus' DP optimizer, which adds the noise."""
        from opacus.grad_sample import GradSampleModuleFastGradientClipping
        from opacus.optimizers import DPOptimizerFastGradientClipping

        model.train()
        check_dp_model(model)
        if self.cfg.dp_clipping == "bk":
            from trustfit.privacy.bk import BookKeepingClipper

            self.clipper, self.module = BookKeepingClipper(model, self.cfg.dp_max_grad_norm), model  # hooks only
        else:
            # with frozen embeddings no input requires grad: Opacus' hooks still see the output gradients
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            try:
                self.module = GradSampleModuleFastGradientClipping(model, batch_first=True, loss_reduction="mean",
                                                                max_grad_norm=self.cfg.dp_max_grad_norm,
                                                                use_ghost_clipping=True)
            except NotImplementedError as e:  # Opacus names the unsupported layer
                raise ConfigError(f"DP training: {e}") from None
        self.optimizer = DPOptimizerFastGradientClipping(
            optimizer, noise_multiplier=self.noise, max_grad_norm=self.cfg.dp_max_grad_norm,
            expected_batch_size=self.cfg.dp_batch_size, loss_reduction="mean")
        forward = inspect.signature(model.forward).parameters
        self.pass_ids = [k for k in ("position_ids", "token_type_ids") if k in forward]
        return PrivateParts(self.module, self.optimizer)

    def _batch(self, trainer, feats) -> dict:
        return with_explicit_ids(trainer.collate_fn(feats, trainer.pad_id), self.pass_ids, trainer.accelerator.device)

    # -- one logical step -------------------------------------------------------------------
    def step(self, trainer, idx: list[int]) -> float:
        """Clip every example's gradient, sum over the physical batches of this logical batch, add
        noise once and take the optimizer step; returns the mean training loss."""
        from opacus.utils.batch_memory_manager import BatchSplittingSampler
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        order = sorted(idx, key=lambda i: len(trainer.features[i]))  # less padding; the sum is the same
        losses, count = 0.0, 0
        st, t = trainer.state, time.perf_counter()  # phase_seconds as in a plain step
        self.module.train()
        for chunk in BatchSplittingSampler(sampler=[order], max_batch_size=self.cfg.batch_size,
                                           optimizer=self.optimizer):
            if not chunk:  # an empty Poisson batch still takes a noise-only step
                for p in self.optimizer.params:
                    p.grad = torch.zeros_like(p)
            else:
                batch = self._batch(trainer, [trainer.features[i] for i in chunk])
                t = st.timed("collate", t)
                loss = per_example_loss(self.module, batch)
                t = st.timed("forward", t)
                if self.clipper is not None:  # the per-example clipping is part of the backward
                    self.clipper.clipped_backward(loss)
                else:
                    DPTensorFastGradientClipping(self.module, self.optimizer, loss, "mean").backward()
                t = st.timed("backward", t)
                losses, count = losses + float(loss.detach().sum()), count + len(chunk)
            self.optimizer.step()  # noise is added here
            self.optimizer.zero_grad(set_to_none=True)
            t = st.timed("optimizer", t)
        self._account(1)
        return losses / max(count, 1)

    # -- accounting -------------------------------------------------------------------------
    def _account(self, steps: int) -> None:
        if self.history and self.history[-1][:2] == [self.noise, self.sample_rate]:
            self.history[-1][2] += steps
        else:
            self.history.append([self.noise, self.sample_rate, steps])

    @property
    def steps_taken(self) -> int:
        return int(sum(h[2] for h in self.history))

    def epsilon(self) -> float:
        """Epsilon spent so far at the run's delta."""
        if self._eps_cache is None or self._eps_cache[0] != self.steps_taken:
            self._eps_cache = (self.steps_taken, epsilon_spent(self.history, self.delta, self.accountant))
        return self._eps_cache[1]

    def on_train_start(self, trainer) -> None:
        if self.target_epsilon is not None:
            remaining = trainer.state.total_steps - trainer.state.step
            self.allowed_steps = self.steps_taken + steps_within(
                self.target_epsilon, self.delta, self.noise, self.sample_rate, remaining, self.accountant,
                [tuple(h) for h in self.history])
            self._check_budget(trainer)

    def _check_budget(self, trainer) -> None:
        if self.allowed_steps is not None and self.steps_taken >= self.allowed_steps \
                and trainer.state.step < trainer.state.total_steps:
            trainer.state.should_stop = self.stopped_by_budget = True
            self.say(f"DP: stopping at step {trainer.state.step}: one more step would spend more than "
                     f"epsilon {self.target_epsilon:g}")

    def on_step_end(self, trainer) -> None:
        self._check_budget(trainer)

    def on_epoch_end(self, trainer) -> None:
        record = {"event": "privacy", "epoch": trainer.state.epoch, "step": trainer.state.step,
                  "epsilon": self.epsilon(), "delta": self.delta}
        self.epochs.append(record)
        self.say(f"epoch {trainer.state.epoch}: epsilon {record['epsilon']:.3f} spent (delta {self.delta:g}, "
                 f"{self.accountant})")
        if self.log_path is not None:
            with Path(self.log_path).open("a") as f:
                f.write(json.dumps(record) + "\n")

    def state_dict(self) -> dict:
        return {"history": self.history, "epochs": self.epochs, "noise": self.noise}

    def load_state_dict(self, d: dict) -> None:
        if not math.isclose(d["noise"], self.noise, rel_tol=1e-9):
            raise DataError(f"the checkpoint was trained with noise multiplier {d['noise']}, this run computes "
                            f"{self.noise}: resume with the same settings")
        self.history, self.epochs = [list(h) for h in d["history"]], d["epochs"]

    def report(self) -> dict[str, Any]:
        """The guarantee and everything behind it (stored in trustfit.json and the run summary)."""
        return {"epsilon": self.epsilon(), "delta": self.delta, "accountant": self.accountant,
                "target_epsilon": self.target_epsilon, "noise_multiplier": self.noise,
                "sample_rate": self.sample_rate, "expected_batch_size": self.cfg.dp_batch_size,
                "physical_batch_size": self.cfg.batch_size, "steps": self.steps_taken,
                "planned_steps": self.planned_steps, "max_grad_norm": self.cfg.dp_max_grad_norm,
                "clipping": CLIPPING[self.cfg.dp_clipping],
                "sampling": SAMPLING, "privacy_unit": "one training example (sentence or row)",
                "trained": self.cfg.dp_train, "trained_parameters": self.trained_parameters,
                "history": self.history, "stopped_by_budget": self.stopped_by_budget,
                "epochs": self.epochs, "precision": "fp32"}
