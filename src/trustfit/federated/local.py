"""One client's share of a round: load the global weights, train E local epochs on its own file
with trustfit's loop and plugins (DP-SGD included), and return the shared weights; or score the
global model on its own dev file. Nothing of the client's data leaves this module but weights
and aggregate metrics."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trustfit.config import TrainConfig
from trustfit.errors import DataError
from trustfit.train.plugins import Plugin

# what a client's evaluation reports (every reply must carry the same keys)
EVAL_KEYS = {"ner": ("f1", "precision", "recall", "token_accuracy"), "classify": ("macro_f1", "accuracy")}


@dataclass
class LocalResult:
    arrays: dict[str, np.ndarray]
    metrics: dict[str, float]
    privacy: dict[str, Any] | None = None  # the client's accountant state, kept across rounds


def data_labels(task) -> set[str]:
    """The labels a client's training data uses (NER: its IOB2 tags)."""
    if task.cfg.task == "ner":
        return {t for s in task.train.sentences for t in (s.tags or [])}
    return {e.label for e in task.train.examples if e.label is not None}


def load_client_task(cfg: TrainConfig, labels: list[str]):
    """The client's task with the server's label set; a label the server lacks is an error naming both."""
    from trustfit.tasks import make_task

    task = make_task(cfg)
    task.load_data(labels=labels)
    unknown = sorted(data_labels(task) - set(labels))
    if unknown:
        raise DataError(f"{cfg.train}: this client's data has labels the server's model lacks: {', '.join(unknown)}; "
                        f"the server trains {', '.join(labels)}. Map them to the server's labels, or start the server "
                        "with them (--labels)")
    return task


def build_global_model(task, source: str, federate_params: str, seed: int):
    """The model every party builds the same way: backbone + head with the server's labels (and
    the recipe's attention dropout: the task's build_model), the shared parameters
    (federate_params, as --dp-train) trainable, the rest frozen."""
    from accelerate.utils import set_seed

    from trustfit.privacy.params import select_trainable

    set_seed(seed)
    model = task.build_model(source)
    model, _ = select_trainable(model, federate_params)
    return model


def shared_state(model) -> dict[str, np.ndarray]:
    """The parameters that travel: the trainable ones, as float32 arrays."""
    model = getattr(model, "_module", model)
    return {n: p.detach().float().cpu().numpy().copy() for n, p in model.named_parameters() if p.requires_grad}


def load_shared(model, arrays: dict[str, np.ndarray]) -> None:
    """Copy `arrays` into the model's shared parameters; every one must be there, with its shape."""
    params = dict(model.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
    if missing or extra:
        raise DataError(f"the global weights do not fit this model: {len(missing)} shared parameters missing "
                        f"({', '.join(missing[:3])}), {len(extra)} unexpected ({', '.join(extra[:3])}); the server "
                        "and the clients must use the same backbone and --federate-params")
    with torch.no_grad():
        for n, a in arrays.items():
            params[n].copy_(torch.from_numpy(np.asarray(a)).to(params[n].dtype))


class ProximalTerm(Plugin):
    """FedProx (Li et al. 2020): adds mu * (w - w_global) to each shared gradient, the gradient of
    (mu/2) ||w - w_global||^2, keeping a client near the global model on skewed data."""

    def __init__(self, mu: float) -> None:
        self.mu = mu
        self.anchor: list[tuple[torch.nn.Parameter, torch.Tensor]] = []

    def on_train_start(self, trainer) -> None:
        self.anchor = [(p, p.detach().clone()) for p in trainer.unwrapped_model.parameters() if p.requires_grad]

    def on_backward(self, trainer, batch, loss) -> None:
        for p, w0 in self.anchor:
            if p.grad is not None:
                p.grad.add_(p.detach() - w0, alpha=self.mu)


def round_schedule(cfg: TrainConfig, server_round: int, rounds: int, steps: int):
    """The slice of one linear warm-up/decay schedule over all rounds that round `server_round`
    (1-based) covers, as a LambdaLR multiplier of its local step (each round has `steps`)."""
    total = max(1, rounds * steps)
    warm = int(cfg.warmup_ratio * total)
    offset = (server_round - 1) * steps

    def factor(step: int) -> float:
        g = offset + step
        if g < warm:
            return g / max(1, warm)
        return max(0.0, (total - g) / max(1, total - warm))
    return factor


def accelerator_for(cfg: TrainConfig):
    """An accelerate Accelerator (CPU unless CUDA) and the precision the config resolves to, set up
    as `trustfit train` sets up its own (train.run.training_accelerator)."""
    from trustfit.train.run import training_accelerator

    acc, precision, _, _ = training_accelerator(cfg.precision)
    return acc, precision


@dataclass
class ClientModel:
    """What a client builds for a round: its task (data with the server's labels), the global model."""

    task: Any
    model: Any
    tokenizer: Any
    max_length: int
    accelerator: Any
    precision: str


def client_model(cfg: TrainConfig, labels: list[str], arrays: dict[str, np.ndarray],
                 federate_params: str) -> ClientModel:
    """The client's data and the global model with `arrays` loaded into its shared parameters."""
    from trustfit.encode.tokenize import model_max_length
    from trustfit.models.backbone import load_tokenizer, resolve_model_source

    acc, precision = accelerator_for(cfg)
    task = load_client_task(cfg, labels)
    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source)
    model = build_global_model(task, source, federate_params, cfg.seed)
    load_shared(model, arrays)
    max_length = cfg.max_length or model_max_length(tokenizer, model.config)
    return ClientModel(task, model, tokenizer, max_length, acc, precision)


def train_round(cfg: TrainConfig, labels: list[str], arrays: dict[str, np.ndarray], federate_params: str,
                server_round: int, rounds: int, proximal_mu: float = 0.0, privacy: dict | None = None,
                quiet: bool = True) -> LocalResult:
    """Train the global weights `arrays` for cfg.epochs local epochs on cfg.train; `privacy` is
    the client's accountant state from its earlier rounds (None at first)."""
    from trustfit.train.loop import LoopSettings, Trainer
    from trustfit.train.margins import margin_share_for
    from trustfit.train.plugins import ProgressBar

    c = client_model(cfg, labels, arrays, federate_params)
    task, model = c.task, c.model
    features = task.encode(c.tokenizer, c.max_length)
    seed = cfg.seed + 1000 * server_round  # fresh batches (and Poisson draws) every round
    plugins: list[Any] = [ProgressBar(enabled=not quiet)]
    margin_share = margin_share_for(cfg, features, c.tokenizer, seed, lambda m: None)
    if margin_share is not None:
        features = margin_share.join(plugins)
    private = None
    if cfg.dp:
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        private = _private_plugin(cfg, task, features, c.max_length, rounds, privacy, seed, trained)
        plugins.append(private)
    if proximal_mu > 0:
        plugins.append(ProximalTerm(proximal_mu))
    pad = c.tokenizer.pad_token_id if c.tokenizer.pad_token_id is not None else 0
    with tempfile.TemporaryDirectory(prefix="trustfit-fed-") as work:
        settings = LoopSettings(epochs=cfg.epochs, max_steps=None, batch_size=cfg.batch_size, lr=cfg.lr,
                                weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                                max_grad_norm=cfg.max_grad_norm, seed=seed, eval_every=None,
                                checkpoint_every=10**9, pool_batches=cfg.pool_batches,
                                select_metric=task.select_metric, save_checkpoints=False,
                                layer_lr_decay=cfg.layer_lr_decay,
                                micro_batch_tokens=cfg.micro_batch_tokens)
        trainer = Trainer(model, features, settings, c.accelerator, None, plugins, work, pad, collate_fn=task.collate,
                          loss_fn=task.loss_fn, private=private)
        # this round's slice of one schedule over all rounds, on the optimizer the loop's own
        # scheduler drives (under DP the one inside Opacus' wrapper)
        trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(
            trainer.scheduler.optimizer, round_schedule(cfg, server_round, rounds, trainer.state.total_steps))
        state = trainer.fit()
        out = shared_state(trainer.unwrapped_model)
    metrics = {"num-examples": float(len(task.train)), "train-loss": float(state.last_loss),
               "steps": float(state.step), "train-seconds": float(state.train_seconds),
               "words-per-second": state.words_seen / max(state.train_seconds, 1e-9)}
    result = LocalResult(out, metrics)
    if private is not None:
        metrics["epsilon"] = float(private.epsilon())
        result.privacy = {**private.state_dict(), "report": private.report()}
    return result


def _private_plugin(cfg: TrainConfig, task, features, max_length: int, rounds: int, privacy: dict | None, seed: int,
                    trained_parameters: int):
    """DP-SGD for one round, its noise planned once for all rounds (epsilon is the budget over
    the whole federation) and its accountant continuing the client's earlier rounds."""
    from trustfit.privacy.dp import PrivateTraining, check_one_input_per_example

    check_one_input_per_example(features, len(task.train), max_length)
    plan = cfg.model_copy(update={"epochs": cfg.epochs * rounds, "seed": seed})
    if privacy is not None:
        plan = plan.model_copy(update={"dp_noise": privacy["noise"]})
    private = PrivateTraining(plan, len(features), trained_parameters, log_path=None, say=lambda m: None)
    if privacy is not None:
        private.load_state_dict({k: privacy[k] for k in ("history", "epochs", "noise")})
    return private


def evaluate_round(cfg: TrainConfig, labels: list[str], arrays: dict[str, np.ndarray],
                   federate_params: str) -> dict[str, float]:
    """The global model's metrics on this client's dev file (cfg.dev)."""
    c = client_model(cfg, labels, arrays, federate_params)
    task = c.task
    task.max_length = c.max_length
    if task.dev is None or len(task.dev) == 0:  # the same keys, weight 0: left out of the average
        return {"num-examples": 0.0, **{k: 0.0 for k in EVAL_KEYS[cfg.task]}}
    met = task.evaluate(c.model.eval(), c.tokenizer, c.accelerator.device, c.precision)
    return {"num-examples": float(len(task.dev)), **{k: float(met[k]) for k in EVAL_KEYS[cfg.task]}}
