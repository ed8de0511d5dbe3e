"""Experiment tracking as a training plugin, as users of the HF Trainer's `report_to` expect:
`--track tensorboard` (event files in RUN/tensorboard) or `--track mlflow` (MLflow's local file
store in RUN/mlruns by default, no server needed; MLFLOW_TRACKING_URI overrides). Logged: train
loss and learning rate every `every` steps, words/s, every dev metric at each evaluation; the
pipeline adds audit headlines and the model card as artifacts (`log_summary`, `log_artifact`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from trustfit.errors import ConfigError
from trustfit.train.plugins import Plugin

TRACKERS = ("none", "tensorboard", "mlflow")


def _scalars(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric leaves of a (nested) metrics dict, flattened with '/'."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = float(v)
        elif isinstance(v, dict) and k in ("per_type", "per_class", "entity", "calibrated"):
            out.update(_scalars(f"{prefix}{k}/", v))
    return out


class Tracker(Plugin):
    """Common part: what is logged and when; subclasses say where."""

    def __init__(self, run_dir: str | Path, every: int = 50) -> None:
        self.run_dir, self.every = Path(run_dir), every
        self._t0, self._words0 = 0.0, 0

    def log(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def on_train_start(self, trainer) -> None:
        self._t0, self._words0 = time.perf_counter(), trainer.state.words_seen

    def on_train_end(self, trainer) -> None:
        if trainer.accelerator.is_main_process and trainer.state.history:
            self.log({"train/words_per_second_overall": trainer.state.words_seen / max(1e-9, trainer.state.train_seconds)},
                     trainer.state.step)

    def on_step_end(self, trainer) -> None:
        st = trainer.state
        if not trainer.accelerator.is_main_process or st.step % self.every:
            return
        wps = (st.words_seen - self._words0) / max(1e-9, time.perf_counter() - self._t0)
        self.log({"train/loss": st.last_loss, "train/lr": trainer.scheduler.get_last_lr()[0],
                  "train/words_per_second": wps}, st.step)

    def on_evaluate(self, trainer, metrics) -> None:
        if trainer.accelerator.is_main_process:
            self.log(_scalars("dev/", metrics), trainer.state.step)

    def log_summary(self, values: dict[str, float]) -> None:
        self.log(values, 0)

    def log_artifact(self, path: str | Path) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker(Tracker):
    def __init__(self, run_dir, every: int = 50) -> None:
        super().__init__(run_dir, every)
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError("--track tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.writer = None

    def _open(self):
        # opened on first use: the run folder may only be created when training starts
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        return self.writer

    def log(self, values, step) -> None:
        w = self._open()
        for k, v in values.items():
            w.add_scalar(k, v, step)
        w.flush()

    def log_artifact(self, path) -> None:
        p = Path(path)
        if p.suffix == ".md":
            w = self._open()
            w.add_text(p.name, p.read_text(encoding="utf-8"), 0)
            w.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class MlflowTracker(Tracker):
    def __init__(self, run_dir, every: int = 50, experiment: str = "trustfit", params: dict | None = None) -> None:
        super().__init__(run_dir, every)
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--track mlflow needs MLflow: pip install mlflow-skinny (or mlflow)") from None
        self.mlflow, self.experiment, self.params, self.run = mlflow, experiment, params, None

    def _open(self):
        if self.run is None:
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                # the local file store needs no server or database; MLflow 3 asks for this opt-in
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
                uri = (self.run_dir / "mlruns").resolve().as_uri()
            self.mlflow.set_tracking_uri(uri)
            self.mlflow.set_experiment(self.experiment)
            self.run = self.mlflow.start_run()
            if self.params:
                self.mlflow.log_params({k: str(v)[:250] for k, v in self.params.items()})
        return self.mlflow

    def log(self, values, step) -> None:
        self._open().log_metrics({k.replace("/", ".").replace(" ", "_"): v for k, v in values.items()}, step=step)

    def log_artifact(self, path) -> None:
        self._open().log_artifact(str(path))

    def close(self) -> None:
        if self.run is not None and self.mlflow.active_run() is not None:
            self.mlflow.end_run()


def make_tracker(kind: str, run_dir: str | Path, params: dict | None = None) -> Tracker | None:
    if kind not in TRACKERS:
        raise ConfigError(f"unknown tracker {kind!r}: use one of {', '.join(TRACKERS)}")
    if kind == "tensorboard":
        return TensorBoardTracker(run_dir)
    if kind == "mlflow":
        return MlflowTracker(run_dir, params=params)
    return None
