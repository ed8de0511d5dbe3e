"""Exponential moving average (EMA) of the weights: evaluations, the saved model and the final
report use the average, which is flatter than the last step's weights and usually generalises a
little better at no extra training cost (one fp32 copy of the trained parameters).

The average is kept in every checkpoint (ema.safetensors), so a resumed run continues it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from safetensors.torch import load_file, save_file

from trustfit.train.checkpoint import latest_checkpoint
from trustfit.train.plugins import Plugin

EMA_FILE = "ema.safetensors"


class WeightAverage(Plugin):
    """EMA of the trainable parameters with decay `decay`, warmed up as min(decay, (1+t)/(10+t))
    so that early steps are not dominated by the pretrained start."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {}

    def _params(self, trainer) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in trainer.unwrapped_model.named_parameters() if p.requires_grad}

    def on_train_start(self, trainer) -> None:
        params = self._params(trainer)
        self.shadow = {n: p.detach().float().clone() for n, p in params.items()}
        folder = latest_checkpoint(trainer.ckpt_dir) if trainer.state.step else None
        if folder is not None and (folder / EMA_FILE).exists():
            self.shadow.update(load_file(str(folder / EMA_FILE)))

    def on_step_end(self, trainer) -> None:
        self.updates += 1
        weight = 1 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        params = self._params(trainer)
        names = list(self.shadow)
        torch._foreach_lerp_([self.shadow[n] for n in names], [params[n].detach().float() for n in names], weight)

    @contextmanager
    def swapped_in(self, trainer) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own weights after it."""
        params = self._params(trainer)
        saved = {n: p.detach().clone() for n, p in params.items()}
        self._copy_into(params, self.shadow)
        try:
            yield
        finally:
            self._copy_into(params, saved)

    def on_train_end(self, trainer) -> None:
        """Training is over: the model keeps the averaged weights (the final report and any
        later save see what was evaluated)."""
        self._copy_into(self._params(trainer), self.shadow)

    @staticmethod
    def _copy_into(params: dict[str, torch.nn.Parameter], values: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(values[n])

    def on_checkpoint(self, trainer, path) -> None:
        if trainer.accelerator.is_main_process:
            save_file({n: t.contiguous() for n, t in self.shadow.items()}, str(path / EMA_FILE))

    def state_dict(self) -> dict:
        return {"updates": self.updates}

    def load_state_dict(self, d: dict) -> None:
        self.updates = d["updates"]
