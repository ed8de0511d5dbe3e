"""Plugins attach behaviour to the loop's events (see loop.EVENTS). A plugin is any object with
some of the on_* methods; stateful ones add state_dict/load_state_dict for checkpoints."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable


class Plugin:
    """Base class documenting the protocol; every method is optional."""

    def on_train_start(self, trainer) -> None: ...
    def on_epoch_start(self, trainer) -> None: ...
    def on_backward(self, trainer, batch, loss) -> None: ...
    def on_step_end(self, trainer) -> None: ...
    def on_evaluate(self, trainer, metrics: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer) -> None: ...
    def on_checkpoint(self, trainer, path: Path) -> None: ...
    def on_train_end(self, trainer) -> None: ...


class EpochData(Plugin):
    """Base of plugins that rebuild the training features at the start of each epoch
    (augmentation): subclasses implement `build(epoch)` deterministically in (seed, epoch), so a
    resumed or 2-process run builds the same data, and record what they did in `stats[epoch]`."""

    built_epoch: int | None = None

    def build(self, epoch: int) -> list[Any]:
        raise NotImplementedError

    def features(self, epoch: int) -> list[Any]:
        t0 = time.perf_counter()
        feats = self.build(epoch)
        self.stats.setdefault(epoch, {})["seconds"] = round(time.perf_counter() - t0, 3)
        self.built_epoch = epoch
        return feats

    def join(self, plugins: list[Any]) -> list[Any]:
        """Add this plugin to a run's `plugins` and return the first epoch's features, on which the
        Trainer is built (each later epoch's come from on_epoch_start)."""
        plugins.append(self)
        return self.features(0)

    def on_epoch_start(self, trainer) -> None:
        if self.built_epoch != trainer.state.epoch:
            trainer.set_features(self.features(trainer.state.epoch))


class ProgressBar(Plugin):
    """A tqdm bar over optimizer steps with loss, words/s and the last dev F1."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None
        self.t0 = 0.0
        self.words0 = 0

    def on_train_start(self, trainer) -> None:
        if not self.enabled or not trainer.accelerator.is_main_process:
            return
        from tqdm.auto import tqdm

        st = trainer.state
        self.bar = tqdm(total=st.total_steps, initial=st.step, desc="train", unit="step", dynamic_ncols=True)
        self.t0, self.words0 = time.perf_counter(), st.words_seen

    def on_step_end(self, trainer) -> None:
        if self.bar is None:
            return
        st = trainer.state
        self.bar.update(1)
        if st.step % 10 == 0:
            wps = (st.words_seen - self.words0) / max(1e-9, time.perf_counter() - self.t0)
            post = {"epoch": st.epoch + 1, "loss": f"{st.last_loss:.3f}", "words/s": f"{wps:.0f}"}
            if trainer.metrics:
                key = trainer.settings.select_metric
                post[f"dev_{key}"] = f"{100 * trainer.metrics[key]:.2f}"
            self.bar.set_postfix(post, refresh=False)

    def on_evaluate(self, trainer, metrics) -> None:
        if self.bar is not None:
            key = trainer.settings.select_metric
            self.bar.write(f"step {trainer.state.step}: dev {key} {100 * metrics[key]:.2f}")
            self.t0, self.words0 = time.perf_counter(), trainer.state.words_seen

    def on_train_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()


class JsonlLogger(Plugin):
    """Appends step losses and evaluations to `path` as JSON lines (main process only)."""

    def __init__(self, path: Path, every: int = 50) -> None:
        self.path = Path(path)
        self.every = every

    def _write(self, trainer, record: dict) -> None:
        if trainer.accelerator.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def on_step_end(self, trainer) -> None:
        st = trainer.state
        if st.step % self.every == 0:
            self._write(trainer, {"event": "step", "step": st.step, "epoch": st.epoch, "loss": st.last_loss,
                                  "lr": trainer.scheduler.get_last_lr()[0]})

    def on_evaluate(self, trainer, metrics) -> None:
        self._write(trainer, {"event": "evaluate", "step": trainer.state.step, "epoch": trainer.state.epoch,
                              **metrics})


class EarlyStopping(Plugin):
    """Stops when `metric` has not improved by `min_delta` for `patience` evaluations."""

    def __init__(self, patience: int, metric: str = "f1", min_delta: float = 0.0) -> None:
        self.patience, self.metric, self.min_delta = patience, metric, min_delta
        self.best = float("-inf")
        self.bad = 0

    def on_evaluate(self, trainer, metrics) -> None:
        value = metrics[self.metric]
        if value > self.best + self.min_delta:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            if self.bad >= self.patience:
                trainer.state.should_stop = True

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.bad = d["best"], d["bad"]


class BestModel(Plugin):
    """Keeps the best model by dev `metric` in the output folder (HF format) via `save`; without
    evaluations the final model is saved."""

    def __init__(self, save: Callable[[Any, dict], None], metric: str = "f1") -> None:
        self.save, self.metric = save, metric
        self.best = float("-inf")
        self.best_step = -1

    def on_evaluate(self, trainer, metrics) -> None:
        if metrics[self.metric] > self.best:
            self.best, self.best_step = metrics[self.metric], trainer.state.step
            if trainer.accelerator.is_main_process:
                self.save(trainer.unwrapped_model, {"best_step": self.best_step, "dev": metrics})
            trainer.accelerator.wait_for_everyone()

    def on_train_end(self, trainer) -> None:
        if self.best_step < 0 and trainer.accelerator.is_main_process:
            self.save(trainer.unwrapped_model, {"best_step": trainer.state.step, "dev": None})

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.best_step = d["best"], d["best_step"]
