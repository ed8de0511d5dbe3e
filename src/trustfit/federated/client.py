"""The Flower ClientApp: each train message runs trustfit's local training on this data owner's
file and replies with the shared weights and metrics; each evaluate message scores the global
model on its dev file. The data file comes from the SuperNode's node config (`data-path`,
deployment) or from the simulation's partition folder (`partition-id`)."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from trustfit.config import TrainConfig
from trustfit.errors import ConfigError

app = ClientApp()
PRIVACY_STATE = "trustfit-privacy"


def to_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


def to_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord(torch_state_dict=OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v)))
                                                    for k, v in arrays.items()))


def client_files(context: Context, config: ConfigRecord) -> tuple[str, str | None, str]:
    """(train file, dev file or None, client name) of this SuperNode."""
    node = context.node_config
    if "data-path" in node:
        data = str(node["data-path"])
        dev = str(node["dev-path"]) if node.get("dev-path") else None
        return data, dev, str(node.get("name") or Path(data).name)
    if "partition-id" in node and config.get("partitions"):
        k = int(node["partition-id"])
        summary = json.loads((Path(str(config["partitions"])) / "partitions.json").read_text())
        files = summary["clients"][k]["files"]
        return files["train"], files.get("dev"), f"client-{k}"
    raise ConfigError("this SuperNode has no data: start it with trustfit federate client --data FILE "
                      "(node config data-path)")


def local_config(msg: Message, context: Context) -> tuple[TrainConfig, dict[str, Any], str]:
    config = msg.content["config"]
    train, dev, name = client_files(context, config)
    fields = json.loads(str(config["train-config"]))
    work = str(context.node_config.get("work-dir") or Path(train).parent)
    cfg = TrainConfig(**{**fields, "train": train, "dev": dev, "out": work})
    return cfg, config, name


@app.train()
def train(msg: Message, context: Context) -> Message:
    from trustfit.federated.local import train_round

    cfg, config, name = local_config(msg, context)
    state = context.state.config_records.get(PRIVACY_STATE)
    privacy = json.loads(str(state["json"])) if state is not None else None
    result = train_round(cfg, json.loads(str(config["labels"])), to_arrays(msg.content["arrays"]),
                         str(config["federate-params"]), int(config["server-round"]), int(config["rounds"]),
                         proximal_mu=float(config.get("proximal-mu", 0.0)), privacy=privacy)
    info: dict[str, Any] = {"name": name}
    if result.privacy is not None:
        context.state[PRIVACY_STATE] = ConfigRecord({"json": json.dumps(result.privacy)})
        info["privacy"] = json.dumps(result.privacy["report"])
    reply = RecordDict({"arrays": to_record(result.arrays), "metrics": MetricRecord(result.metrics),
                        "client": ConfigRecord(info)})
    return Message(content=reply, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    from trustfit.federated.local import evaluate_round

    cfg, config, name = local_config(msg, context)
    metrics = evaluate_round(cfg, json.loads(str(config["labels"])), to_arrays(msg.content["arrays"]),
                             str(config["federate-params"]))
    reply = RecordDict({"metrics": MetricRecord(metrics), "client": ConfigRecord({"name": name})})
    return Message(content=reply, reply_to=msg)
