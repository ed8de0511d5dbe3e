"""Flower's strategies (FedAvg, FedProx, FedAdam) with what a federated run must record: per
round who was asked, who replied, who failed and why, bytes each way, per-client metrics and
epsilon; a round counts only when at least `min_replies` clients replied (else the global model
stays as it was and the round is marked failed)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, Callable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from trustfit.errors import TrustfitError


class FederationError(TrustfitError):
    """The federation cannot go on (clients did not connect)."""


def weighted_mean(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Example-weighted mean of every metric (clients with weight 0, e.g. no dev file, left
    out); `epsilon` is the largest client's, not a mean."""
    rows = [next(iter(r.metric_records.values())) for r in records]
    total = sum(float(m[weight_key]) for m in rows)
    out: dict[str, float] = {weight_key: total}
    for k in rows[0]:
        if k == weight_key:
            continue
        if k == "epsilon":
            out[k] = max(float(m[k]) for m in rows)
        elif total > 0:
            out[k] = sum(float(m[k]) * float(m[weight_key]) for m in rows) / total
    return MetricRecord(out)


def as_float32(arrays: ArrayRecord) -> ArrayRecord:
    """The model's own precision on the wire: FedAdam's update comes back in float64, which would
    double every later round's bytes."""
    import numpy as np

    from trustfit.federated.client import to_arrays, to_record

    return to_record({k: v.astype(np.float32, copy=False) for k, v in to_arrays(arrays).items()})


class RoundRecorder:
    """Mixin over a Flower strategy; `rounds` collects one dict per round, `on_change` is called
    after each update (the server writes rounds.json there)."""

    def setup(self, min_replies: int, first_wait: int, connect_timeout: float,
              on_change: Callable[[list[dict[str, Any]]], None] = lambda rounds: None) -> None:
        self.min_replies, self.first_wait, self.connect_timeout = min_replies, first_wait, connect_timeout
        self.rounds: list[dict[str, Any]] = []
        self.on_change = on_change
        self._asked: dict[str, list[int]] = {}

    def _round(self, server_round: int) -> dict[str, Any]:
        while len(self.rounds) < server_round:
            self.rounds.append({"round": len(self.rounds) + 1, "bytes_sent": 0, "bytes_received": 0})
        return self.rounds[server_round - 1]

    def _wait_for_nodes(self, grid: Grid, server_round: int) -> None:
        need = self.first_wait if server_round == 1 else self.min_replies
        t0 = time.monotonic()
        while len(list(grid.get_node_ids())) < need:
            if time.monotonic() - t0 > self.connect_timeout:
                have = len(list(grid.get_node_ids()))
                raise FederationError(
                    f"round {server_round}: only {have} of the {need} clients needed connected within "
                    f"{self.connect_timeout:g} s; start more with `trustfit federate client --server ADDR`, lower "
                    "--clients/--min-clients, or raise --connect-timeout")
            time.sleep(0.5)

    def _ask(self, kind: str, server_round: int, arrays: ArrayRecord, messages: Iterable[Message]) -> list[Message]:
        messages = list(messages)
        rec = self._round(server_round)
        rec["bytes_sent"] += arrays.count_bytes() * len(messages)
        self._asked[kind] = [m.metadata.dst_node_id for m in messages]
        rec[f"{kind}_asked"] = len(messages)
        rec.setdefault("started", time.time())
        return messages

    def _sort_replies(self, kind: str, server_round: int, replies: Iterable[Message]) -> list[Message]:
        replies = list(replies)
        ok = [m for m in replies if not m.has_error()]
        rec = self._round(server_round)
        failures = [{"node": m.metadata.src_node_id, "reason": m.error.reason} for m in replies if m.has_error()]
        answered = {m.metadata.src_node_id for m in replies}
        failures += [{"node": n, "reason": "no reply before the round's timeout (client gone?)"}
                     for n in self._asked.get(kind, []) if n not in answered]
        rec[f"{kind}_replied"] = len(ok)
        rec[f"{kind}_failures"] = failures
        clients = []
        for m in ok:
            info = m.content.config_records.get("client")
            metrics = dict(next(iter(m.content.metric_records.values())))
            row = {"node": m.metadata.src_node_id, "name": str(info["name"]) if info else None, **metrics}
            if info is not None and "privacy" in info:
                row["privacy"] = json.loads(str(info["privacy"]))
            clients.append(row)
        rec[f"{kind}_clients"] = clients
        if kind == "train":
            rec["bytes_received"] += sum(m.content["arrays"].count_bytes() for m in ok)
        return ok

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._wait_for_nodes(grid, server_round)
        return self._ask("train", server_round, arrays, super().configure_train(server_round, arrays, config, grid))

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        ok = self._sort_replies("train", server_round, replies)
        rec = self._round(server_round)
        if len(ok) < self.min_replies:
            rec["aggregated"] = False
            rec["note"] = (f"{len(ok)} of the {self.min_replies} replies needed: the global model is kept "
                           "from the round before")
            self.on_change(self.rounds)
            return None, None
        rec["aggregated"] = True
        arrays, metrics = super().aggregate_train(server_round, ok)
        arrays = as_float32(arrays) if arrays is not None else None
        rec["train"] = dict(metrics) if metrics is not None else {}
        self.on_change(self.rounds)
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self._ask("evaluate", server_round, arrays,
                         super().configure_evaluate(server_round, arrays, config, grid))

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        ok = self._sort_replies("evaluate", server_round, replies)
        rec = self._round(server_round)
        metrics = super().aggregate_evaluate(server_round, ok) if ok else None
        rec["federated_eval"] = dict(metrics) if metrics is not None else {}
        rec["seconds"] = time.time() - rec.get("started", time.time())
        self.on_change(self.rounds)
        return metrics


def make_strategy(name: str, min_replies: int, proximal_mu: float, server_lr: float,
                  federated_eval: bool = True):
    """A recording FedAvg / FedProx / FedAdam asking every connected client each round (to
    evaluate too, unless `federated_eval` is off)."""
    base = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}[name]
    cls = type(f"Recorded{base.__name__}", (RoundRecorder, base), {})
    kw: dict[str, Any] = dict(fraction_train=1.0, fraction_evaluate=1.0 if federated_eval else 0.0,
                              min_train_nodes=min_replies,
                              min_evaluate_nodes=min_replies, min_available_nodes=min_replies,
                              train_metrics_aggr_fn=weighted_mean, evaluate_metrics_aggr_fn=weighted_mean)
    if name == "fedprox":
        kw["proximal_mu"] = proximal_mu
    if name == "fedadam":
        kw.update(eta=server_lr, eta_l=server_lr)
    return cls(**kw)
