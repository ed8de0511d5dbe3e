"""Federated fine-tuning: partitions (property tests), settings and data errors, the round
schedule, a simulation that saves a loadable model, client DP accounted over rounds, and a
deployment on loopback with one SuperNode killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import _cli_ok, write_conll
from trustfit.errors import ConfigError, DataError
from trustfit.federated.partition import MIN_EXAMPLES, PartitionSpec, parse_partition, split_indices

TRUSTFIT = [sys.executable, "-m", "trustfit"]


# -- partitions ----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.sampled_from(["O", "PER", "LOC", "ORG"]), min_size=1, max_size=300),
       n_clients=st.integers(1, 12), alpha=st.sampled_from([0.1, 0.5, 5.0]), seed=st.integers(0, 99),
       kind=st.sampled_from(["iid", "dirichlet", "by-document"]), doc_size=st.integers(1, 9))
def test_partitions_are_disjoint_cover_the_data_and_feed_every_client(labels, n_clients, alpha, seed, kind, doc_size):
    docs = [list(range(i, min(i + doc_size, len(labels)))) for i in range(0, len(labels), doc_size)]
    spec = PartitionSpec(kind, alpha if kind == "dirichlet" else None)
    try:
        parts = split_indices(labels, n_clients, spec, seed, docs)
    except ConfigError as e:  # only when the data cannot give every client enough
        assert "fewer than" in str(e) and "clients" in str(e)
        return
    assert len(parts) == n_clients
    flat = sorted(i for p in parts for i in p)
    assert flat == list(range(len(labels)))
    assert min(len(p) for p in parts) >= MIN_EXAMPLES
    if kind == "by-document":  # whole documents, in file order
        owner = {i: k for k, p in enumerate(parts) for i in p}
        for d in docs:
            assert len({owner[i] for i in d}) == 1
        firsts = [owner[d[0]] for d in docs]
        assert firsts == sorted(firsts)


def test_dirichlet_skews_labels_and_iid_does_not():
    labels = ["PER"] * 500 + ["LOC"] * 500
    def per_share(spec):
        parts = split_indices(labels, 5, spec, seed=0)
        return [sum(labels[i] == "PER" for i in p) / len(p) for p in parts]
    iid, skewed = per_share(PartitionSpec("iid")), per_share(parse_partition("dirichlet:0.1"))
    assert max(iid) - min(iid) < 0.2
    assert max(skewed) - min(skewed) > 0.5


@pytest.mark.parametrize("spec", ["dirichlet", "dirichlet:0", "dirichlet:-1", "random", "by-doc", "dirichlet:x"])
def test_unparseable_partition_is_a_clear_error(spec):
    with pytest.raises(ConfigError, match=r"--partition: cannot parse .*iid \| dirichlet:ALPHA"):
        parse_partition(spec)


def test_by_document_needs_documents_and_enough_of_them():
    with pytest.raises(ConfigError, match="marks no documents"):
        split_indices(["O"] * 10, 2, PartitionSpec("by-document"), 0, None)
    with pytest.raises(ConfigError, match=r"3 of 5 clients get fewer than 2 examples from 2 documents"):
        split_indices(["O"] * 10, 5, PartitionSpec("by-document"), 0, [list(range(5)), list(range(5, 10))])


# -- settings and data errors ----------------------------------------------------------------
def test_bad_round_settings_are_clear_errors(tmp_path, conll_slices, tiny_model_dir):
    from typer.testing import CliRunner

    from trustfit.cli import app

    train, dev = conll_slices
    base = ["federate", "--train", train, "--model", tiny_model_dir, "--out", tmp_path / "o", "--clients", "2"]
    cases = [(["--rounds", "0"], "--rounds: 0; a federation needs at least 1 round"),
             (["--partition", "dirichlet:abc"], "--partition: cannot parse 'dirichlet:abc'"),
             (["--clients", "500", "--partition", "by-document"], "fewer than 2 examples from"),
             (["--strategy", "fedsgd"], "--strategy: 'fedsgd'; use fedavg, fedprox, fedadam"),
             (["--federate-params", "top-x"], "--federate-params: unknown value 'top-x'"),
             (["--strategy", "fedprox", "--dp-epsilon", "8"], "--strategy fedprox: its proximal term"),
             (["--min-clients", "3"], "--min-clients: 3; between 1 and --clients (2)")]
    for extra, message in cases:
        r = CliRunner().invoke(app, [str(a) for a in base + extra])
        assert r.exit_code == 2, (extra, r.output)
        assert message in " ".join(r.output.split()), (extra, r.output)


def test_the_clients_learning_rate_defaults_to_the_federated_one_unless_given_or_private(tmp_path):
    from trustfit.cli.federate import RECIPE, local_recipe
    from trustfit.config import DP_DEFAULT_LR
    from trustfit.federated.settings import FEDERATED_LR

    def lr(config=None, **given):
        options = {k: None for k in RECIPE} | {"task": None, "dev": None, "local_epochs": 1, "config": config} | given
        return local_recipe(options, "train.txt", str(tmp_path)).lr

    assert lr() == FEDERATED_LR
    assert lr(lr=3e-5) == 3e-5
    assert lr(dp_epsilon=8.0) == DP_DEFAULT_LR["lora"]
    toml = tmp_path / "recipe.toml"
    toml.write_text("lr = 2e-4\n")
    assert lr(config=toml) == 2e-4


def test_a_client_with_labels_the_server_lacks_is_named(tmp_path):
    from trustfit.config import TrainConfig
    from trustfit.federated.local import load_client_task

    f = write_conll(tmp_path / "c.conll", [[("Ann", "B-PER"), ("met", "O"), ("Acme", "B-COMPANY")]])
    cfg = TrainConfig(train=str(f), out=str(tmp_path))
    with pytest.raises(DataError, match=r"labels the server's model lacks: B-COMPANY; the server trains O, B-PER, I-PER"):
        load_client_task(cfg, ["O", "B-PER", "I-PER"])
    assert load_client_task(cfg, ["O", "B-COMPANY", "I-COMPANY", "B-LOC", "I-LOC", "B-PER", "I-PER"]).labels[1] \
        == "B-COMPANY"  # a subset of the server's labels is fine


def test_round_schedules_join_into_one_linear_schedule():
    from transformers import get_linear_schedule_with_warmup
    import torch

    from trustfit.config import TrainConfig
    from trustfit.federated.local import round_schedule

    cfg = TrainConfig(train="x", out="y", warmup_ratio=0.1)
    rounds, steps = 4, 25
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    central = get_linear_schedule_with_warmup(opt, int(0.1 * rounds * steps), rounds * steps)
    expected = []
    for _ in range(rounds * steps):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        central.step()
    joined = [round_schedule(cfg, r, rounds, steps)(s) for r in range(1, rounds + 1) for s in range(steps)]
    assert joined == pytest.approx(expected, abs=1e-12)


def test_the_server_waits_for_clients_then_says_who_is_missing():
    from trustfit.federated.strategy import FederationError, make_strategy

    class OneNode:
        def get_node_ids(self):
            return [7]

    s = make_strategy("fedavg", 2, 0.0, 0.0)
    s.setup(min_replies=2, first_wait=3, connect_timeout=0.6)
    with pytest.raises(FederationError, match=r"round 1: only 1 of the 3 clients needed connected within 0.6 s"):
        s._wait_for_nodes(OneNode(), 1)


def test_a_client_whose_server_does_not_answer_times_out_clearly(tmp_path):
    from typer.testing import CliRunner

    from trustfit.cli import app

    f = write_conll(tmp_path / "c.conll", [[("Ann", "B-PER"), ("met", "O")]])
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = CliRunner().invoke(app, ["federate", "client", "--data", str(f), "--server", f"127.0.0.1:{port}",
                                 "--connect-timeout", "1"])
    assert r.exit_code == 2
    assert f"127.0.0.1:{port}: no SuperLink answered within 1 s" in r.output


# -- simulation ----------------------------------------------------------------------------------
def _sentences(path: Path) -> list[tuple]:
    from trustfit.data.conll import read_conll

    return sorted((tuple(s.tokens), tuple(s.tags)) for s in read_conll(str(path)).sentences)


def test_simulation_trains_three_clients_and_saves_a_loadable_model(tmp_path, conll_slices, tiny_model_dir):
    from trustfit.models.backbone import read_meta

    train, dev = conll_slices
    out = tmp_path / "fed"
    _cli_ok(["federate", "--train", train, "--dev", dev, "--model", tiny_model_dir, "--clients", "3", "--rounds", "2",
             "--partition", "dirichlet:0.5", "--out", out, "--lr", "1e-3", "-q"])
    part = json.loads((out / "partitions" / "partitions.json").read_text())
    got = sorted(s for c in part["clients"] for f in c["files"].values() for s in _sentences(Path(f)))
    assert got == _sentences(train)  # disjoint and covering, as files
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [r["train_replied"] for r in rounds] == [3, 3] and all(r["aggregated"] for r in rounds)
    assert all(r["bytes_sent"] > 0 and r["bytes_received"] > 0 for r in rounds)
    assert "f1" in rounds[-1]["central_eval"] and "f1" in rounds[-1]["federated_eval"]
    meta = read_meta(out)
    assert meta["federated"]["strategy"] == "fedavg" and meta["federated"]["rounds_aggregated"] == 2
    assert (out / "federated_rounds.png").stat().st_size > 0
    r = _cli_ok(["evaluate", "--model", out, "--data", dev, "-q"])
    assert "entity F1" in r.output
    _cli_ok(["report", out])  # the model card says how the model was trained and shows the rounds
    card = (out / "card" / "README.md").read_text()
    assert "- Federated: fedavg over 2 rounds of 1 local epoch(s), 3 clients (simulation, partition dirichlet:0.5)" \
        in card
    assert (out / "card" / "plots" / "federated_rounds.png").exists()


@pytest.mark.parametrize("strategy, params", [("fedadam", "top-1"), ("fedprox", "lora")])
def test_other_strategies_send_only_the_shared_parameters(tmp_path, conll_slices, tiny_model_dir, strategy, params):
    from safetensors.torch import load_file

    train, dev = conll_slices
    out = tmp_path / strategy
    _cli_ok(["federate", "--train", train, "--dev", dev, "--model", tiny_model_dir, "--clients", "2", "--rounds", "1",
             "--out", out, "--strategy", strategy, "--federate-params", params, "--lr", "1e-3", "-q"])
    fed = json.loads((out / "trustfit.json").read_text())["federated"]
    assert fed["strategy"] == strategy and fed["rounds_aggregated"] == 1
    assert 0 < fed["shared_parameters"] < fed["parameters"] / 4
    # per round: the shared float32 arrays (plus each array's .npy header) to 2 clients for training,
    # back from both, and to both again for their evaluation
    r1 = json.loads((out / "rounds.json").read_text())["rounds"][0]
    copy = r1["bytes_received"] / 2
    assert r1["bytes_sent"] == 4 * copy and fed["bytes_per_round"][0] == 6 * copy
    assert 4 * fed["shared_parameters"] < copy < 1.5 * 4 * fed["shared_parameters"]
    weights = load_file(str(out / "model.safetensors"))
    assert not any("lora" in k for k in weights)  # LoRA is merged into plain weights


def test_client_dp_epsilon_is_the_accountants_over_its_rounds(tmp_path, conll_slices, tiny_model_dir):
    from trustfit.privacy.accounting import epsilon_spent

    train, dev = conll_slices
    out = tmp_path / "fed_dp"
    _cli_ok(["federate", "--train", train, "--model", tiny_model_dir, "--clients", "2", "--rounds", "2",
             "--partition", "iid", "--out", out, "--dp-epsilon", "8", "--dp-batch-size", "16", "--dp-delta", "1e-3",
             "-q"])
    fed = json.loads((out / "trustfit.json").read_text())["federated"]
    clients = fed["client_privacy"]
    assert sorted(clients) == ["client-0", "client-1"]
    part = json.loads((out / "partitions" / "partitions.json").read_text())
    for k, c in enumerate(part["clients"]):
        p = clients[f"client-{k}"]
        assert p["rounds"] == 2
        assert p["sample_rate"] == pytest.approx(16 / c["train_examples"])
        steps = sum(h[2] for h in p["history"])
        assert steps == p["steps"] > 0
        assert p["epsilon"] == pytest.approx(epsilon_spent([[p["noise_multiplier"], p["sample_rate"], steps]], 1e-3),
                                             rel=1e-6)
        assert p["epsilon"] <= 8.0 + 1e-6


# -- deployment: SuperLink + 3 SuperNodes in separate processes, one killed mid-run ---------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_deployment_survives_a_supernode_killed_mid_run(tmp_path, conll_slices, tiny_model_dir):
    from trustfit.config import TrainConfig
    from trustfit.federated.partition import PartitionSpec, write_partitions
    from trustfit.tasks import make_task

    train, dev = conll_slices
    task = make_task(TrainConfig(train=str(train), out=str(tmp_path)))
    task.load_data()
    part = write_partitions(task, 3, PartitionSpec("iid"), tmp_path / "parts")
    out, port = tmp_path / "dep", _free_port()
    env = {**os.environ, "FLWR_LOG_LEVEL": "INFO"}
    server = subprocess.Popen(TRUSTFIT + [str(a) for a in ["federate", "server", "--out", out, "--dev", dev, "--model", tiny_model_dir,
                                          "--clients", "3", "--min-clients", "2", "--rounds", "3", "--port", port,
                                          "--round-timeout", "90", "--lr", "1e-3", "-q"]],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              start_new_session=True)
    clients = []
    try:
        for k, c in enumerate(part["clients"]):
            clients.append(subprocess.Popen(
                TRUSTFIT + [str(a) for a in ["federate", "client", "--data", c["files"]["train"], "--dev", c["files"]["dev"],
                            "--server", f"127.0.0.1:{port}", "--port", _free_port(), "--name", f"owner-{k}"]],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True))
        rounds_file = out / "rounds.json"
        deadline = time.time() + 240
        while time.time() < deadline:  # kill owner-2 once round 1 is aggregated
            if rounds_file.exists() and any(r.get("aggregated") for r in json.loads(rounds_file.read_text())["rounds"]):
                break
            assert server.poll() is None, server.stdout.read()
            time.sleep(1)
        os.killpg(clients[2].pid, signal.SIGKILL)
        output, _ = server.communicate(timeout=420)
        assert server.returncode == 0, output
    finally:
        for p in clients + [server]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert len(rounds) == 3 and all(r["aggregated"] for r in rounds), rounds
    assert rounds[0]["train_replied"] == 3
    assert all(r["train_replied"] == 2 for r in rounds[1:])
    failed = [f for r in rounds[1:] for f in r["train_failures"]]
    lost = [r for r in rounds[1:] if r["train_asked"] == 2]  # or the link had dropped the node before asking
    assert failed or len(lost) == 2
    names = {c["name"] for r in rounds for c in r["train_clients"]}
    assert names == {"owner-0", "owner-1", "owner-2"}
    meta = json.loads((out / "trustfit.json").read_text())
    assert meta["federated"]["mode"] == "deployment" and meta["federated"]["rounds_aggregated"] == 3
    r = _cli_ok(["evaluate", "--model", out, "--data", dev, "-q"])
    assert "entity F1" in r.output
