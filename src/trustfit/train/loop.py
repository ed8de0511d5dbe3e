"""The training loop: short, and extended only through events.

Events, in order of a run: on_train_start, then per epoch on_epoch_start (a plugin may swap the
epoch's features with `trainer.set_features`), then per optimizer step on_backward (gradients are
ready, before clipping: adversarial training adds its perturbed loss here) and on_step_end;
on_evaluate(metrics) after each dev evaluation; on_epoch_end; on_checkpoint(path); and
on_train_end. A plugin implements any subset (see plugins.Plugin) and may set
`trainer.state.should_stop`. Plugins with state implement state_dict/load_state_dict and are
saved in every checkpoint."""

from __future__ import annotations

import os
import re
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from trustfit.encode.align import IGNORE_INDEX
from trustfit.encode.batching import BucketBatchSampler, collate
from trustfit.train.plugins import Plugin
from trustfit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

EVENTS = ("on_train_start", "on_epoch_start", "on_backward", "on_step_end", "on_evaluate", "on_epoch_end", "on_checkpoint",
          "on_train_end")


@dataclass
class TrainState:
    """Where the run is; saved in checkpoints."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    total_steps: int = 0
    steps_per_epoch: int = 0
    words_seen: int = 0
    train_seconds: float = 0.0
    last_loss: float = float("nan")
    last_eval_step: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    should_stop: bool = False
    # where the time went (seconds): collate, forward, backward, optimizer (clip + step + schedule), evaluate
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, phase: str, t0: float) -> float:
        """Add the time since `t0` to `phase`; returns now (the next phase's start)."""
        now = time.perf_counter()
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + now - t0
        return now


@dataclass
class LoopSettings:
    epochs: int
    max_steps: int | None
    batch_size: int
    lr: float
    weight_decay: float
    warmup_ratio: float
    max_grad_norm: float
    seed: int
    eval_every: int | None
    checkpoint_every: int
    pool_batches: int
    select_metric: str = "f1"
    layer_lr_decay: float = 1.0  # < 1: layer l of L trains at lr * decay ** (L + 1 - l) (embeddings l = 0)
    save_checkpoints: bool = True  # False: a short run that is never resumed (a federated round)
    micro_batch_tokens: int | None = None  # split a batch into passes of at most this many padded sub-tokens


class Trainer:
    """Runs optimisation over encoded features with an accelerate Accelerator."""

    def __init__(self, model, features: Sequence[Any], settings: LoopSettings, accelerator,
                 evaluate: Callable[[Any], dict[str, Any]] | None, plugins: Sequence[Any], out_dir: Path,
                 pad_id: int = 0, collate_fn: Callable[[Sequence[Any], int], dict] = collate,
                 loss_fn: Callable[[Any, dict], Any] | None = None, private=None) -> None:
        """`features` are encoded examples with len() (sub-tokens, for bucketing) and n_words;
        `collate_fn(features, pad_id)` makes a batch; `loss_fn(model, batch)` overrides the
        model's own loss (e.g. class weights). `private` (privacy.dp.PrivateTraining) brings its
        own Poisson sampler, wraps model and optimizer and takes each step under DP."""
        self.accelerator = accelerator
        self.settings = settings
        self.features = list(features)
        self.evaluate_fn = evaluate
        self.plugins = list(plugins)
        # plugins that add to the gradients per backward (adversarial, proximal) see the whole batch
        self.micro_batch_tokens = None if any(map(adds_gradients, self.plugins)) else settings.micro_batch_tokens
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.pad_id = pad_id
        self.collate_fn = collate_fn
        self.loss_fn = loss_fn
        self.state = TrainState()
        self.private = private
        weights = [f.weight for f in self.features] if any(getattr(f, "weight", 1) != 1 for f in self.features) else None
        self.sampler = private.sampler if private is not None else BucketBatchSampler(
            [len(f) for f in self.features], settings.batch_size, seed=settings.seed, pool_batches=settings.pool_batches,
            rank=accelerator.process_index, world_size=accelerator.num_processes, weights=weights)
        # steps per epoch can differ by a batch or two when features hold several sentences
        self.epoch_steps: list[int] = []
        while (len(self.epoch_steps) < settings.epochs if not settings.max_steps
               else sum(self.epoch_steps) < settings.max_steps):
            self.epoch_steps.append(self.sampler.num_batches(len(self.epoch_steps)))
        self.state.steps_per_epoch = self.epoch_steps[0]
        self.state.total_steps = settings.max_steps or sum(self.epoch_steps)
        self.n_epochs = len(self.epoch_steps)
        self.optimizer = self._make_optimizer(model)
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(settings.warmup_ratio * self.state.total_steps), self.state.total_steps)
        if private is not None:
            self.model, self.optimizer = private.make_private(model, self.optimizer)
        else:
            self.model, self.optimizer = accelerator.prepare(model, self.optimizer)
        self.metrics: dict[str, Any] | None = None

    def _make_optimizer(self, model) -> torch.optim.Optimizer:
        """AdamW; no weight decay on biases and norms; with layer_lr_decay < 1, one group per
        (layer, decay) pair so that lower layers move less than the head."""
        s = self.settings
        n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
        per_layer = s.layer_lr_decay < 1 and bool(n_layers)
        groups: dict[tuple[int, bool], dict] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            depth = layer_depth(name, n_layers) if per_layer else 0
            key = (depth, p.ndim < 2)
            if key not in groups:
                scale = s.layer_lr_decay ** (n_layers + 1 - depth) if per_layer else 1.0
                groups[key] = {"params": [], "weight_decay": 0.0 if key[1] else s.weight_decay, "lr": s.lr * scale}
            groups[key]["params"].append(p)
        groups = [groups[k] for k in sorted(groups)]
        try:
            return torch.optim.AdamW(groups, lr=s.lr, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.AdamW(groups, lr=s.lr, foreach=True)

    # -- events -----------------------------------------------------------------------------
    def emit(self, event: str, **kw) -> None:
        for p in self.plugins:
            fn = getattr(p, event, None)
            if fn is not None:
                fn(self, **kw)

    @property
    def unwrapped_model(self):
        """The plain model, without accelerate's or Opacus' wrapper."""
        model = self.accelerator.unwrap_model(self.model)
        return getattr(model, "_module", model)

    def set_features(self, features: Sequence[Any]) -> None:
        """Train on `features` from the current epoch on (e.g. freshly augmented copies); the
        epoch's batches are recomputed, the schedule's total steps stay as planned."""
        self.features = list(features)
        self.sampler.lengths = [len(f) for f in self.features]
        if self.sampler.weights is not None or any(getattr(f, "weight", 1) != 1 for f in self.features):
            self.sampler.weights = [getattr(f, "weight", 1.0) for f in self.features]
        for e in range(self.state.epoch, len(self.epoch_steps)):
            self.epoch_steps[e] = self.sampler.num_batches(e)

    def compute_loss(self, batch: dict, model=None):
        """The training loss of `batch` (the task's `loss_fn` or the model's own) through `model`,
        by default the prepared (possibly distributed) model."""
        model = self.model if model is None else model
        return self.loss_fn(model, batch) if self.loss_fn else model(**batch).loss

    # -- checkpoints ------------------------------------------------------------------------
    def _trainer_state(self) -> dict[str, Any]:
        plugin_states = {type(p).__name__: p.state_dict() for p in self.plugins if hasattr(p, "state_dict")}
        return {"state": asdict(self.state), "plugins": plugin_states}

    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        path = save_checkpoint(self.ckpt_dir, self.state.step, self.unwrapped_model, self.optimizer, self.scheduler,
                               self._trainer_state(), rank=acc.process_index, is_main=acc.is_main_process,
                               barrier=acc.wait_for_everyone)
        self.emit("on_checkpoint", path=path)
        return path

    def resume(self) -> bool:
        """Restore the last complete checkpoint, if any; True when one was loaded."""
        folder = latest_checkpoint(self.ckpt_dir)
        if folder is None:
            return False
        saved = load_checkpoint(folder, self.unwrapped_model, self.optimizer, self.scheduler, self.accelerator.process_index)
        st = saved["state"]
        total, spe = self.state.total_steps, self.state.steps_per_epoch
        self.state = TrainState(**st)
        self.state.total_steps, self.state.steps_per_epoch = total, spe
        for p in self.plugins:
            if hasattr(p, "load_state_dict") and type(p).__name__ in saved["plugins"]:
                p.load_state_dict(saved["plugins"][type(p).__name__])
        return True

    def release(self) -> None:
        """Free the optimizer state and gradients once training is over."""
        self.optimizer.zero_grad(set_to_none=True)
        opt = getattr(self.optimizer, "optimizer", self.optimizer)
        opt.state.clear()

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any] | None:
        if self.evaluate_fn is None:
            return None
        t0 = time.perf_counter()
        with self.evaluation_weights():  # e.g. the weight average: what is evaluated is what gets saved
            metrics = self.evaluate_fn(self.unwrapped_model)
            self.state.timed("evaluate", t0)
            self.metrics = metrics
            self.state.last_eval_step = self.state.step
            self.state.history.append({"step": self.state.step, "epoch": self.state.epoch, **metrics})
            self.emit("on_evaluate", metrics=metrics)
        return metrics

    def evaluation_weights(self):
        """A context in which the model holds the weights to evaluate and save (a plugin's
        `swapped_in`, such as the weight average), by default its own."""
        for p in self.plugins:
            if hasattr(p, "swapped_in"):
                return p.swapped_in(self)
        return nullcontext()

    # -- the loop ---------------------------------------------------------------------------
    def _step(self, idx: list[int]) -> None:
        feats = [self.features[i] for i in idx]
        with cpu_attention_kernel(self.accelerator.device):  # adversarial and DP passes included
            loss = self.private.step(self, idx) if self.private is not None else self._plain_step(feats)
        t0 = time.perf_counter()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        st = self.state
        st.timed("optimizer", t0)
        st.step += 1
        st.batch_in_epoch += 1
        st.words_seen += sum(f.n_words for f in feats) * self.accelerator.num_processes
        st.last_loss = float(loss)

    def _plain_step(self, feats: list[Any]):
        """One optimizer step over `feats`: forward and backward in micro-batches of at most
        `micro_batch_tokens` padded sub-tokens (less activation memory, the same gradient: each
        pass's mean loss is weighted by its share of the labels; with class weights in the loss,
        nearly the same), then clip and step."""
        st, t = self.state, time.perf_counter()
        parts = [self.collate_fn(part, self.pad_id) for part in split_by_tokens(feats, self.micro_batch_tokens)]
        t = st.timed("collate", t)
        shares = label_shares(parts) if len(parts) > 1 else [None]
        loss_sum = 0.0
        self.model.train()
        for i, (part, share) in enumerate(zip(parts, shares)):
            batch = {k: v.to(self.accelerator.device) for k, v in part.items()}
            last = i == len(parts) - 1
            with nullcontext() if last else self.accelerator.no_sync(self.model):  # one all-reduce per step
                loss = self.compute_loss(batch)
                if share is not None:
                    loss = loss * share
                t = st.timed("forward", t)
                self.accelerator.backward(loss)
            loss_sum = loss_sum + loss.detach()
            if last:
                self.emit("on_backward", batch=batch, loss=loss)  # adversarial training's extra passes count here
            t = st.timed("backward", t)
        if self.settings.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.settings.max_grad_norm)
        self.optimizer.step()
        st.timed("optimizer", t)
        return loss_sum

    def fit(self) -> TrainState:
        st, s = self.state, self.settings
        self.emit("on_train_start")
        kill_at = int(os.environ.get("TRUSTFIT_FAULT_KILL_AT_STEP", "0"))  # fault injection for resume tests
        while st.epoch < self.n_epochs and st.step < st.total_steps and not st.should_stop:
            self.emit("on_epoch_start")
            self.sampler.set_epoch(st.epoch, skip=st.batch_in_epoch)
            t0 = time.perf_counter()
            for idx in self.sampler:
                self._step(idx)
                self.emit("on_step_end")
                if kill_at and st.step == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                if s.eval_every and st.step % s.eval_every == 0:
                    st.train_seconds += time.perf_counter() - t0
                    self.evaluate()
                    t0 = time.perf_counter()
                if s.save_checkpoints and st.step % s.checkpoint_every == 0 and st.step < st.total_steps:
                    st.train_seconds += time.perf_counter() - t0
                    self.save_checkpoint()
                    t0 = time.perf_counter()
                if st.should_stop or st.step >= st.total_steps:
                    break
            st.train_seconds += time.perf_counter() - t0
            if st.batch_in_epoch >= self.epoch_steps[st.epoch]:
                st.epoch += 1
                st.batch_in_epoch = 0
                self.emit("on_epoch_end")
                if not s.eval_every and st.last_eval_step != st.step:
                    self.evaluate()
                if s.save_checkpoints and st.step < st.total_steps and not st.should_stop:
                    self.save_checkpoint()
        if st.last_eval_step != st.step:
            self.evaluate()
        self.emit("on_train_end")
        return st


def split_by_tokens(feats: Sequence[Any], budget: int | None) -> list[list[Any]]:
    """`feats` sorted by length and cut into the fewest runs of near-equal size whose padded
    size (members x longest) stays within `budget` sub-tokens; a feature longer than the budget
    is a run of its own. None: one run."""
    if not budget or len(feats) < 2:
        return [list(feats)]
    ordered = sorted(feats, key=len)
    for k in range(1, len(ordered) + 1):
        size = -(-len(ordered) // k)
        parts = [ordered[i:i + size] for i in range(0, len(ordered), size)]
        if all(len(part) == 1 or len(part) * len(part[-1]) <= budget for part in parts):
            return parts
    return [[f] for f in ordered]


def adds_gradients(plugin: Any) -> bool:
    """Whether `plugin` implements on_backward (adds to the gradients of the batch it is given)."""
    fn = getattr(type(plugin), "on_backward", None)
    return fn is not None and fn is not Plugin.on_backward


def label_shares(parts: Sequence[dict]) -> list[float]:
    """Each collated pass's share of the labels of the whole batch: the weight of its mean loss."""
    counts = [label_count(b) for b in parts]
    total = max(sum(counts), 1)
    return [c / total for c in counts]


def label_count(batch: dict) -> int:
    """How many labels a collated batch's mean loss averages over (the ignore index -100 aside)."""
    labels = batch.get("labels")
    if labels is None:
        return len(next(iter(batch.values())))
    return int((labels != IGNORE_INDEX).sum()) if labels.ndim > 1 else len(labels)


def cpu_attention_kernel(device: torch.device):
    """On CPU, PyTorch's plain (math) attention for training: the fused flash kernel it picks
    when attention dropout is 0 has a slow backward (bf16, 3,000 CoNLL-2003 sentences: 851 words/s
    with it, 1,190 with math); elsewhere PyTorch's own choice."""
    if device.type != "cpu":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


_LAYER_RE = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


def layer_depth(name: str, n_layers: int) -> int:
    """Depth of a parameter for layer-wise lr decay: 0 for embeddings, l + 1 for encoder layer
    l, n_layers + 1 for everything above (pooler, head)."""
    m = _LAYER_RE.search(name)
    if m:
        return min(int(m.group(1)) + 1, n_layers)
    return 0 if "embed" in name else n_layers + 1
