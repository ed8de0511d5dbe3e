"""`trustfit federate` on one machine: split the training file into client partitions, then run
the ServerApp and N virtual SuperNodes on Flower's simulation engine (Ray). The clients run one
at a time with every core: on a CPU that is faster than several sharing it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from trustfit.config import TrainConfig
from trustfit.errors import ConfigError, OutputError
from trustfit.federated.settings import FederatedSettings

PARTITIONS_DIR = "partitions"
def prepare_run_dir(out: str | Path, overwrite: bool) -> Path:
    """An empty run folder (cleared with `overwrite`); a non-empty one is refused."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is a file; --out must be a folder")
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise OutputError(f"{path}: is not empty; choose another --out or pass --overwrite to replace it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_simulation(cfg: TrainConfig, clients: int, partition: str, rounds: int, out: Path,
                       client_dev_share: float = 0.1, **settings: Any) -> FederatedSettings:
    """Partition cfg.train into out/partitions (each client holding out `client_dev_share` of
    its examples for federated evaluation) and write out/federation.json."""
    if not 0 <= client_dev_share < 1:
        raise ConfigError(f"--client-dev-share: {client_dev_share:g}; a share from 0 (none) to below 1")
    from trustfit.federated.partition import parse_partition, write_partitions
    from trustfit.tasks import make_task

    spec = parse_partition(partition)
    task = make_task(cfg)
    task.load_data()
    fed = FederatedSettings(train_config=cfg.model_dump(), labels=list(task.labels), out=str(out), rounds=rounds,
                            clients=clients, partitions=str(out / PARTITIONS_DIR), partition=str(spec),
                            mode="simulation", dev=cfg.dev, federated_eval=client_dev_share > 0, **settings)
    write_partitions(task, clients, spec, out / PARTITIONS_DIR, seed=cfg.seed, dev_share=client_dev_share)
    fed.save()
    return fed


def simulate(settings: FederatedSettings) -> dict[str, Any]:
    """Run the federation on Flower's simulation engine; returns federated_summary.json's content."""
    from flwr.simulation import run_simulation

    from trustfit.federated.client import app as client_app
    from trustfit.federated.server import make_server_app

    cpus = os.cpu_count() or 1
    backend = {"client_resources": {"num_cpus": cpus, "num_gpus": 0.0},
               "init_args": {"num_cpus": cpus, "include_dashboard": False, "logging_level": "ERROR",
                             "log_to_driver": not settings.quiet}}
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if settings.quiet:  # Flower logs every round at INFO
        import logging

        from flwr.supercore.logger import FLOWER_LOGGER

        FLOWER_LOGGER.setLevel(logging.WARNING)
        os.environ["FLWR_LOG_LEVEL"] = "WARNING"  # the client actors
    try:
        run_simulation(server_app=make_server_app(settings), client_app=client_app, num_supernodes=settings.clients,
                       backend_config=backend, verbose_logging=False)
    finally:  # an actor still starting when the run ends would outlive this process
        import ray

        if ray.is_initialized():
            ray.shutdown()
    summary = Path(settings.out) / "federated_summary.json"
    if not summary.exists():
        raise ConfigError(f"the federation stopped before it saved a model: see the log above and "
                          f"{Path(settings.out) / 'rounds.json'}")
    return json.loads(summary.read_text())
