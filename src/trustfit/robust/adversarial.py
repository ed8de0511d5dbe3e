"""Adversarial training in embedding space: FGM, PGD and FreeLB as plugins on the loop's
`on_backward` event (the clean loss's gradients are ready, before clipping).

The perturbation is added to the output of the backbone's word-embedding module (found with
HF's `get_input_embeddings()`, so no model-specific code; another module by name with
`module`), one delta per example, normalised and projected per example over its tokens:

* FGM (Miyato et al. 2017): one step delta = epsilon * g / ||g|| from the clean gradient;
  the adversarial loss's gradients are added to the clean ones (1 extra forward + backward).
* PGD (Madry et al. 2018): K steps of size alpha, each projected onto the ball ||delta|| <=
  epsilon; only the last step's loss trains the weights. The K - 1 inner steps ask autograd for
  the gradient with respect to delta only (no weight gradients, no gradient all-reduce), through
  the unwrapped model. K extra forwards, K extra (cheaper) backwards.
* FreeLB (Zhu et al. 2020): K ascent steps like PGD, but every step's weight gradients are
  accumulated (each step's loss scaled by 1/K), added to the clean gradients.

The delta lives only in this plugin: nothing is saved into the model, which stays a plain HF
model. Steps are deterministic (no random start), so a resumed run repeats an uninterrupted one."""

from __future__ import annotations

import time
from typing import Any

import torch

from trustfit.errors import ConfigError
from trustfit.train.plugins import Plugin

METHODS = ("fgm", "pgd", "freelb")


def embedding_module(model, name: str | None = None) -> torch.nn.Module:
    """The module whose output is perturbed: `name` from model.named_modules(), or the input
    embeddings every HF model exposes."""
    if name:
        modules = dict(model.named_modules())
        if name not in modules:
            emb = [n for n, m in modules.items() if isinstance(m, torch.nn.Embedding)]
            raise ConfigError(f"adv_module {name!r} is not a module of this model; embedding modules: {', '.join(emb)}")
        return modules[name]
    get = getattr(model, "get_input_embeddings", None)
    module = get() if get else None
    if module is None:
        raise ConfigError("this model does not expose its input embeddings; name the module with --adv-module")
    return module


def _normalise(g: torch.Tensor) -> torch.Tensor:
    """g / ||g|| per example (over tokens and hidden units)."""
    norm = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g / norm.view(-1, *([1] * (g.dim() - 1)))


def _project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (epsilon / norm).clamp(max=1.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


class EmbeddingAdversary(Plugin):
    """Adversarial training on the word-embedding output (see the module docstring)."""

    def __init__(self, method: str, epsilon: float = 1.0, alpha: float = 0.3, steps: int = 3, start_epoch: int = 0,
                 module: str | None = None) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown adversarial method {method!r}; use none, {', '.join(METHODS)}")
        if not epsilon > 0:
            raise ConfigError(f"adv_epsilon must be > 0 (got {epsilon})")
        if not alpha > 0:
            raise ConfigError(f"adv_alpha must be > 0 (got {alpha})")
        if steps < 1:
            raise ConfigError(f"adv_steps must be 1 or more (got {steps})")
        self.method, self.epsilon, self.alpha, self.steps = method, float(epsilon), float(alpha), int(steps)
        self.start_epoch, self.module_name = int(start_epoch), module
        self.delta: torch.Tensor | None = None
        self.capture = False
        self.captured: torch.Tensor | None = None
        self.handle = None
        self.counts = {"steps_attacked": 0, "extra_forward": 0, "extra_backward_full": 0, "extra_backward_delta_only": 0,
                       "seconds": 0.0}

    # -- the hook on the embedding module ---------------------------------------------------
    def _hook(self, module, inputs, output):
        if self.delta is not None:
            return output + self.delta.to(output.dtype)
        if self.capture and torch.is_grad_enabled():
            out = output if output.requires_grad else output.detach().requires_grad_(True)
            out.retain_grad()
            self.captured = out
            return out
        return None

    def on_train_start(self, trainer) -> None:
        self.module = embedding_module(trainer.unwrapped_model, self.module_name)
        self.handle = self.module.register_forward_hook(self._hook)
        self.capture = trainer.state.epoch >= self.start_epoch

    def on_epoch_end(self, trainer) -> None:
        self.capture = trainer.state.epoch >= self.start_epoch

    def on_train_end(self, trainer) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        self.captured, self.delta = None, None

    # -- the attack -------------------------------------------------------------------------
    def _loss(self, trainer, model, batch) -> torch.Tensor:
        with trainer.accelerator.autocast():  # the unwrapped model of the inner PGD steps needs it too
            return trainer.compute_loss(batch, model)

    def on_backward(self, trainer, batch, loss) -> None:
        if trainer.state.epoch < self.start_epoch or self.captured is None or self.captured.grad is None:
            self.captured = None
            return
        t0 = time.perf_counter()
        grad = self.captured.grad.detach().float()
        self.captured = None
        self.capture = False  # the extra passes must not overwrite the capture
        c = self.counts
        try:
            if self.method == "fgm":
                self.delta = self.epsilon * _normalise(grad)
                trainer.accelerator.backward(self._loss(trainer, trainer.model, batch))
                c["extra_forward"] += 1
                c["extra_backward_full"] += 1
            elif self.method == "pgd":
                delta = _project(self.alpha * _normalise(grad), self.epsilon)
                for _ in range(self.steps - 1):  # inner steps: gradient with respect to delta only
                    delta = delta.detach().requires_grad_(True)
                    self.delta = delta
                    (g,) = torch.autograd.grad(self._loss(trainer, trainer.unwrapped_model, batch), delta)
                    delta = _project(delta.detach() + self.alpha * _normalise(g.float()), self.epsilon)
                    c["extra_forward"] += 1
                    c["extra_backward_delta_only"] += 1
                self.delta = delta.detach()
                trainer.accelerator.backward(self._loss(trainer, trainer.model, batch))
                c["extra_forward"] += 1
                c["extra_backward_full"] += 1
            else:  # freelb: every ascent step's weight gradients count, scaled by 1/K
                delta = _project(self.alpha * _normalise(grad), self.epsilon)
                for k in range(self.steps):
                    delta = delta.detach().requires_grad_(True)
                    self.delta = delta
                    trainer.accelerator.backward(self._loss(trainer, trainer.model, batch) / self.steps)
                    c["extra_forward"] += 1
                    c["extra_backward_full"] += 1
                    if k < self.steps - 1:
                        delta = _project(delta.detach() + self.alpha * _normalise(delta.grad.float()), self.epsilon)
        finally:
            self.delta = None
            self.capture = True
        c["steps_attacked"] += 1
        c["seconds"] += time.perf_counter() - t0

    # -- reporting and checkpoints ----------------------------------------------------------
    def summary(self, steps: int, train_seconds: float) -> dict[str, Any]:
        c = self.counts
        n = max(1, c["steps_attacked"])
        return {"method": self.method, "epsilon": self.epsilon, "alpha": self.alpha,
                "steps": self.steps if self.method != "fgm" else 1, "start_epoch": self.start_epoch,
                "module": self.module_name or "get_input_embeddings()", "norm": "L2 per example",
                "steps_attacked": c["steps_attacked"],
                "extra_forward_per_step": c["extra_forward"] / n,
                "extra_backward_per_step": (c["extra_backward_full"] + c["extra_backward_delta_only"]) / n,
                "extra_backward_delta_only_per_step": c["extra_backward_delta_only"] / n,
                "adversarial_seconds_per_step": c["seconds"] / n,
                "seconds_per_step": train_seconds / max(1, steps)}

    def state_dict(self) -> dict:
        return dict(self.counts)

    def load_state_dict(self, d: dict) -> None:
        self.counts.update(d)
