"""`trustfit federate`: federated fine-tuning on Flower. Without a subcommand, a simulation on one
machine (the training file split into client partitions); `federate server` and `federate client`
run the same apps as separate processes (a SuperLink with the ServerApp, one SuperNode per data
owner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from trustfit.cli.common import Task, app, fail
from trustfit.errors import TrustfitError

federate_app = typer.Typer(help=__doc__, invoke_without_command=True)
app.add_typer(federate_app, name="federate")

# the local recipe and the round settings, declared once for the simulation and the server
TASK = typer.Option(None, "--task", help="ner (default) or classify")
MODEL = typer.Option(None, "--model", help="backbone every party starts from (default: packaged all-MiniLM-L6-v2)")
CONFIG = typer.Option(None, "--config", help="TOML/YAML file with the clients' local recipe (train options)")
ROUNDS = typer.Option(5, "--rounds", help="federated rounds")
LOCAL_EPOCHS = typer.Option(1, "--local-epochs", help="epochs each client trains per round")
STRATEGY = typer.Option("fedavg", "--strategy", help="fedavg, fedprox or fedadam")
MU = typer.Option(0.01, "--proximal-mu", help="FedProx: weight of the proximal term")
SERVER_LR = typer.Option(1e-2, "--server-lr", help="FedAdam: the server's step size")
PARAMS = typer.Option(None, "--federate-params", help="trained and sent: all (default; under DP: as --dp-train), "
                      "top-N (top N layers + head) or lora (adapters + head, merged at the end)")
MIN_CLIENTS = typer.Option(None, "--min-clients", help="replies a round needs to count (default: half of --clients)")
ROUND_TIMEOUT = typer.Option(3600.0, "--round-timeout", help="seconds a round waits for replies")
LR = typer.Option(None, "--lr", help="the clients' learning rate (default 5e-4, one rate for every layer: "
                  "averaging the clients' short local runs moves the model less than a central epoch; under DP the DP "
                  "default)")
BATCH = typer.Option(None, "--batch-size")
SEED = typer.Option(None, "--seed")
PRECISION = typer.Option(None, "--precision", help="auto, fp32 or bf16")
CONTEXT = typer.Option(None, "--context-tokens", help="NER document context per side beyond the packed sentences")
DP_EPSILON = typer.Option(None, "--dp-epsilon", help="client DP-SGD: each client's epsilon over all rounds")
DP_DELTA = typer.Option(None, "--dp-delta", help="DP delta, below 1/N of the smallest client")
DP_NOISE = typer.Option(None, "--dp-noise", help="DP noise multiplier (instead of --dp-epsilon, or with it)")
DP_BATCH = typer.Option(None, "--dp-batch-size", help="expected Poisson batch of a client under DP (256)")
DP_TRAIN = typer.Option(None, "--dp-train", help="under DP: lora (default), all, no-embeddings or top-N")
OUT = typer.Option(..., "--out", help="run folder: the global model (HF format), rounds.json, federated_rounds.png")
OVERWRITE = typer.Option(False, "--overwrite", help="replace whatever --out holds")
QUIET = typer.Option(False, "--quiet", "-q")


# the options of both commands that make the clients' TrainConfig, and those that set the rounds
RECIPE = ("model", "lr", "batch_size", "seed", "precision", "context_tokens", "dp_epsilon", "dp_delta", "dp_noise",
          "dp_batch_size", "dp_train")
ROUND_OPTIONS = ("strategy", "proximal_mu", "server_lr", "min_clients", "round_timeout", "quiet")


def local_recipe(options: dict[str, Any], train: str, out: str):
    """The clients' TrainConfig from --config and the recipe flags given (`options`: the command's
    arguments); the local epochs are its epochs, the learning rate FEDERATED_LR unless set."""
    from trustfit.config import build_config, read_config_file
    from trustfit.federated.settings import FEDERATED_ATTENTION_DROPOUT, FEDERATED_LR

    task = options["task"]
    given = {k: options[k] for k in RECIPE}
    file = read_config_file(options["config"]) if options["config"] else {}
    private = any(given[k] is not None or k in file for k in ("dp_epsilon", "dp_noise"))
    if given["lr"] is None and "lr" not in file and not private:  # DP brings its own default
        given["lr"] = FEDERATED_LR
    if "layer_lr_decay" not in file:  # FEDERATED_LR was tuned with every layer at one rate
        given["layer_lr_decay"] = 1.0
    if "attention_dropout" not in file and not private:
        given["attention_dropout"] = FEDERATED_ATTENTION_DROPOUT  # ... and all-MiniLM's attention dropout
    return build_config(options["config"], {"task": task.value if task else None, "train": train,
                                            "dev": options["dev"], "out": out, "epochs": options["local_epochs"],
                                            **given})


def round_settings(cfg, options: dict[str, Any]) -> dict[str, Any]:
    """FederatedSettings' round options; the shared parameters default to all (under DP: --dp-train's)."""
    return {"federate_params": options["federate_params"] or (cfg.dp_train if cfg.dp else "all"),
            **{k: options[k] for k in ROUND_OPTIONS}}


@federate_app.callback()
def federate(
    ctx: typer.Context,
    train: Optional[str] = typer.Option(None, "--train", help="simulation: the file split among the clients"),
    dev: Optional[str] = typer.Option(None, "--dev", help="the server's dev file (central evaluation each round)"),
    clients: int = typer.Option(10, "--clients", help="simulated clients (SuperNodes)"),
    partition: str = typer.Option("iid", "--partition", help="iid, dirichlet:ALPHA (e.g. dirichlet:0.5) or "
                                  "by-document (NER)"),
    client_dev_share: float = typer.Option(0.1, "--client-dev-share", help="share of each client's examples held "
                                           "out for federated evaluation (0: none, every example trains)"),
    out: Optional[str] = typer.Option(None, "--out", help="run folder: partitions, the global model (HF format), "
                                      "rounds.json, federated_rounds.png"),
    task: Optional[Task] = TASK, model: Optional[str] = MODEL, config: Optional[Path] = CONFIG,
    rounds: int = ROUNDS, local_epochs: int = LOCAL_EPOCHS, strategy: str = STRATEGY, proximal_mu: float = MU,
    server_lr: float = SERVER_LR, federate_params: Optional[str] = PARAMS, min_clients: Optional[int] = MIN_CLIENTS,
    round_timeout: float = ROUND_TIMEOUT, lr: Optional[float] = LR, batch_size: Optional[int] = BATCH,
    seed: Optional[int] = SEED, precision: Optional[str] = PRECISION, context_tokens: Optional[int] = CONTEXT,
    dp_epsilon: Optional[float] = DP_EPSILON, dp_delta: Optional[float] = DP_DELTA,
    dp_noise: Optional[float] = DP_NOISE, dp_batch_size: Optional[int] = DP_BATCH,
    dp_train: Optional[str] = DP_TRAIN, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
) -> None:
    """Simulate a federation on this machine: --train is split into --clients partitions, each
    trained by a virtual SuperNode for --local-epochs per round; the global model is saved in --out."""
    if ctx.invoked_subcommand is not None:
        return
    from trustfit.federated.simulation import prepare_run_dir, prepare_simulation, simulate

    if train is None or out is None:
        typer.echo("error: a simulation needs --train and --out (or use `federate server` / `federate client`; "
                   "see --help)", err=True)
        raise typer.Exit(2)
    options = dict(locals())
    try:
        cfg = local_recipe(options, train, out)
        run_dir = prepare_run_dir(out, overwrite)
        settings = prepare_simulation(cfg, clients, partition, rounds, run_dir, client_dev_share,
                                      **round_settings(cfg, options))
        summary = simulate(settings)
    except TrustfitError as e:
        fail(e)
    report(summary, out)


def report(summary: dict[str, Any], out: str) -> None:
    """One line per fact a user checks first."""
    ev = summary.get("central_eval") or {}
    key = "f1" if "f1" in ev else "macro_f1"
    score = f", central dev {key} {100 * ev[key]:.2f}" if key in ev else ""
    per_round = summary["bytes_per_round"]
    mb = sum(per_round) / max(1, len(per_round)) / 1e6
    typer.echo(f"federated ({summary['strategy']}, {summary['rounds_aggregated']}/{summary['rounds']} rounds "
               f"aggregated, {summary['failures']} client failures, {mb:.1f} MB per round){score}", err=True)
    for name, p in sorted((summary.get("client_privacy") or {}).items()):
        typer.echo(f"  {name}: epsilon {p['epsilon']:.3f} at delta {p['delta']:g} over {p['rounds']} rounds "
                   f"({p['steps']} steps)", err=True)
    typer.echo(f"global model saved to {out}", err=True)


@federate_app.command("server")
def federate_server(
    out: str = OUT,
    labels: Optional[str] = typer.Option(None, "--labels", help="the label set: entity types for NER (PER,ORG,...) "
                                         "or classes; default: those of --dev"),
    dev: Optional[str] = typer.Option(None, "--dev", help="the server's dev file (central evaluation each round)"),
    clients: int = typer.Option(2, "--clients", help="SuperNodes the first round waits for"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, "--port", help="the SuperLink's port (clients use HOST:PORT)"),
    connect_timeout: float = typer.Option(300.0, "--connect-timeout", help="seconds to wait for --clients to join"),
    ssl_certfile: Optional[str] = typer.Option(None, "--ssl-certfile", help="TLS: the server's certificate (PEM)"),
    ssl_keyfile: Optional[str] = typer.Option(None, "--ssl-keyfile", help="TLS: the server's private key (PEM)"),
    ssl_ca_certfile: Optional[str] = typer.Option(None, "--ssl-ca-certfile", help="TLS: the CA certificate (PEM)"),
    supernode_keys: Optional[str] = typer.Option(None, "--supernode-keys", help="node authentication: comma-separated "
                                                 "public key files (OpenSSH ECDSA) of the SuperNodes allowed to join"),
    task: Optional[Task] = TASK, model: Optional[str] = MODEL, config: Optional[Path] = CONFIG,
    rounds: int = ROUNDS, local_epochs: int = LOCAL_EPOCHS, strategy: str = STRATEGY, proximal_mu: float = MU,
    server_lr: float = SERVER_LR, federate_params: Optional[str] = PARAMS, min_clients: Optional[int] = MIN_CLIENTS,
    round_timeout: float = ROUND_TIMEOUT, lr: Optional[float] = LR, batch_size: Optional[int] = BATCH,
    seed: Optional[int] = SEED, precision: Optional[str] = PRECISION, context_tokens: Optional[int] = CONTEXT,
    dp_epsilon: Optional[float] = DP_EPSILON, dp_delta: Optional[float] = DP_DELTA,
    dp_noise: Optional[float] = DP_NOISE, dp_batch_size: Optional[int] = DP_BATCH,
    dp_train: Optional[str] = DP_TRAIN, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
) -> None:
    """Start a SuperLink and run the ServerApp on it: the clients (`federate client`) train, the
    server aggregates, evaluates on --dev and saves the global model in --out."""
    import json

    from trustfit.federated.deploy import Tls, run_server
    from trustfit.federated.settings import FederatedSettings
    from trustfit.federated.simulation import prepare_run_dir

    options = dict(locals())
    try:
        cfg = local_recipe(options, dev or "(the clients' files)", out)
        settings = FederatedSettings(train_config=cfg.model_dump(), labels=server_label_set(cfg, labels), out=out,
                                     rounds=rounds, clients=clients, dev=dev, mode="deployment",
                                     connect_timeout=connect_timeout, **round_settings(cfg, options))
        prepare_run_dir(out, overwrite)
        settings.save()
        keys = [k.strip() for k in supernode_keys.split(",")] if supernode_keys else []
        rc = run_server(settings, host, port, Tls(ssl_certfile, ssl_keyfile, ssl_ca_certfile), keys,
                        log=lambda m: typer.echo(m, err=True))
        summary_file = Path(out) / "federated_summary.json"
        if rc != 0 or not summary_file.exists():
            typer.echo(f"error: the federation ended without a model (flwr run exit code {rc}); see the log above, "
                       f"{Path(out) / 'rounds.json'} and {Path(out) / 'superlink.log'}", err=True)
            raise typer.Exit(1)
    except TrustfitError as e:
        fail(e)
    report(json.loads(summary_file.read_text()), out)


def server_label_set(cfg, labels: Optional[str]) -> list[str]:
    """--labels (NER: entity types, expanded to IOB2 tags), else the labels of the dev file."""
    from trustfit.data.schema import LabelSchema
    from trustfit.errors import ConfigError
    from trustfit.tasks import make_task

    if labels:
        names = [l.strip() for l in labels.split(",") if l.strip()]
        if cfg.task == "ner":
            types = {n.split("-", 1)[1] if n[:2] in ("B-", "I-") else n for n in names if n != "O"}
            return list(LabelSchema.from_types(types).labels)
        return sorted(set(names))
    if not cfg.dev:
        raise ConfigError("the server needs its label set: give --labels (e.g. PER,ORG,LOC,MISC) or a --dev file")
    task = make_task(cfg)
    task.load_data()
    return list(task.labels)


@federate_app.command("client")
def federate_client(
    data: str = typer.Option(..., "--data", help="this data owner's training file (never leaves this machine)"),
    server: str = typer.Option(..., "--server", help="the SuperLink's HOST:PORT"),
    dev: Optional[str] = typer.Option(None, "--dev", help="this owner's dev file (federated evaluation)"),
    name: Optional[str] = typer.Option(None, "--name", help="how the server's reports name this client (default: "
                                       "the file's name)"),
    task: Optional[Task] = TASK,
    port: int = typer.Option(9094, "--port", help="this SuperNode's local ClientApp port (one per node on a machine)"),
    root_certificates: Optional[str] = typer.Option(None, "--root-certificates", help="TLS: the CA certificate "
                                                    "(PEM) the server's certificate is signed by; default: insecure"),
    auth_private_key: Optional[str] = typer.Option(None, "--auth-private-key", help="node authentication: this "
                                                   "node's private key (the server lists its public key)"),
    auth_public_key: Optional[str] = typer.Option(None, "--auth-public-key", help="node authentication: its public key"),
    connect_timeout: float = typer.Option(60.0, "--connect-timeout", help="seconds to wait for the server"),
) -> None:
    """Join a federation as one data owner: a SuperNode that trains on --data when the server asks
    (stop it with Ctrl-C; it can serve later runs of the same server)."""
    from trustfit.federated.deploy import check_client_data, run_client

    try:
        check_client_data(task.value if task else "ner", data, dev)
        auth = (auth_private_key, auth_public_key) if auth_private_key and auth_public_key else None
        rc = run_client(server, data, dev, name, port, root_certificates, auth, connect_timeout,
                        log=lambda m: typer.echo(m, err=True))
    except TrustfitError as e:
        fail(e)
    raise typer.Exit(rc)
