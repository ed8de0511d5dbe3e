"""What a federation is run with: the clients' local recipe (a TrainConfig), the server's label
set and the round settings. Saved as `federation.json` in the run folder; the deployed
ServerApp reads it from there, the clients get their part in every round's message."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trustfit.config import TrainConfig
from trustfit.errors import ConfigError

STRATEGIES = ("fedavg", "fedprox", "fedadam")
# the clients' default learning rate: FedAvg's round of 10 averaged clients adds about a tenth of a
# central epoch's sequential steps; on CoNLL-2003 (bench/RESULTS.md) 5e-4 ended 14 F1 points above
# the central default 1e-4
FEDERATED_LR = 5e-4
# the attention dropout FEDERATED_LR was tuned with (all-MiniLM-L6-v2's own); central NER trains with 0
FEDERATED_ATTENTION_DROPOUT = 0.1
# options wired only into central training: refused in a federation, not silently dropped
CENTRAL_ONLY = {"adversarial": "none", "augment": [], "cda": [], "canaries": 0, "class_weights": False}
SETTINGS_FILE = "federation.json"


@dataclass
class FederatedSettings:
    train_config: dict[str, Any]  # the local recipe (TrainConfig fields; epochs = local epochs)
    labels: list[str]  # the server's label set (NER: IOB2 tags), fixed for every client
    out: str
    rounds: int = 5
    clients: int = 10  # SuperNodes the first round waits for (simulation: how many are simulated)
    min_clients: int | None = None  # replies a round needs to count (default: half the clients)
    strategy: str = "fedavg"
    proximal_mu: float = 0.01  # FedProx
    server_lr: float = 1e-2  # FedAdam's server step (eta)
    federate_params: str = "all"  # as --dp-train: all | top-N | lora
    dev: str | None = None  # central evaluation on the server
    round_timeout: float = 3600.0  # seconds a round waits for replies
    connect_timeout: float = 300.0  # seconds the first round waits for the clients to connect
    mode: str = "simulation"  # simulation | deployment
    partitions: str | None = None  # simulation: the folder with client-K/ files
    partition: str | None = None  # simulation: the spec that made them
    federated_eval: bool = True  # ask the clients to score each round's model on their dev files
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from trustfit.privacy.params import check_train_mode

        if self.rounds < 1:
            raise ConfigError(f"--rounds: {self.rounds}; a federation needs at least 1 round")
        if self.clients < 1:
            raise ConfigError(f"--clients: {self.clients}; at least 1")
        if self.min_clients is None:
            self.min_clients = max(1, self.clients // 2)
        if not 1 <= self.min_clients <= self.clients:
            raise ConfigError(f"--min-clients: {self.min_clients}; between 1 and --clients ({self.clients})")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy: {self.strategy!r}; use {', '.join(STRATEGIES)}")
        try:
            check_train_mode(self.federate_params)
        except ConfigError as e:
            raise ConfigError(str(e).replace("dp_train", "--federate-params")) from None
        cfg = self.local_config()
        used = [k for k, off in CENTRAL_ONLY.items() if getattr(cfg, k) != off]
        if used:
            raise ConfigError(f"{', '.join(used)}: not available in federated training; train centrally with "
                              "`trustfit train` for them")
        if cfg.dp and self.strategy == "fedprox":
            raise ConfigError("--strategy fedprox: its proximal term is not part of the clipped, noised gradient "
                              "that DP-SGD accounts for; use fedavg or fedadam with --dp-epsilon")
        if cfg.dp and cfg.dp_train != self.federate_params:
            raise ConfigError(f"--dp-train {cfg.dp_train} and --federate-params {self.federate_params} differ: under "
                              "DP the shared parameters are the trained ones; give the same value")
        if not self.labels:
            raise ConfigError("the server has no label set: give --labels or a --dev file")

    def local_config(self, **update: Any) -> TrainConfig:
        """The clients' TrainConfig (train/dev/out replaced by each client's own)."""
        return TrainConfig(**{**self.train_config, **update})

    @property
    def local_epochs(self) -> int:
        return int(self.train_config.get("epochs", 1))

    def save(self) -> Path:
        path = Path(self.out) / SETTINGS_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FederatedSettings":
        return cls(**json.loads(Path(path).read_text()))
