"""The federation as separate processes (Flower's deployment engine): `federate server` starts a
SuperLink and submits the ServerApp to it with `flwr run`; `federate client` starts a SuperNode
for one data owner, whose file never leaves its machine (its ClientApp reads it locally). With
TLS (--ssl-* on the server, --root-certificates on the clients) and SuperNode authentication
(registered public keys) the same commands run across real machines."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from trustfit.errors import ConfigError, DataError
from trustfit.federated.settings import FederatedSettings

APP_DIR = "flower-app"
CONNECTION = "trustfit"

APP_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "trustfit-federated"
version = "1.0.0"
description = "trustfit's federated fine-tuning (ServerApp and ClientApp live in the installed trustfit package)"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "trustfit"

[tool.flwr.app.components]
serverapp = "trustfit.federated.server:app"
clientapp = "trustfit.federated.client:app"

[tool.flwr.app.config]
run-dir = {run_dir}
"""


@dataclass
class Tls:
    """The server's certificate and key (and CA); without them the link is plain HTTP (--insecure)."""

    certfile: str | None = None
    keyfile: str | None = None
    ca_certfile: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.certfile and self.keyfile)

    def superlink_args(self) -> list[str]:
        if not self.enabled:
            return ["--insecure"]
        args = ["--ssl-certfile", str(self.certfile), "--ssl-keyfile", str(self.keyfile)]
        return args + (["--ssl-ca-certfile", str(self.ca_certfile)] if self.ca_certfile else [])


def flower_bin(name: str) -> str:
    """A Flower executable beside this Python (the venv's), else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise ConfigError(f"{name}: not found; install trustfit with its dependencies (flwr[simulation])")
    return found


def wait_for_port(address: str, timeout: float) -> bool:
    """True once host:port accepts a TCP connection, False after `timeout` seconds."""
    host, _, port = address.rpartition(":")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def write_app(settings: FederatedSettings, tls: Tls, address: str) -> tuple[Path, dict[str, str]]:
    """The Flower App folder `flwr run` bundles, and an environment whose FLWR_HOME names the
    SuperLink connection (address, TLS root certificate)."""
    out = Path(settings.out).resolve()
    app_dir = out / APP_DIR
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "pyproject.toml").write_text(APP_PYPROJECT.replace("{run_dir}", json_str(str(out))))
    home = out / ".flwr"
    home.mkdir(exist_ok=True)
    conn = [f"address = {json_str(address)}"]
    conn.append(f"root-certificates = {json_str(str(Path(tls.ca_certfile).resolve()))}" if tls.enabled and tls.ca_certfile
                else "insecure = true")
    (home / "config.toml").write_text(f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
                                      + "\n".join(conn) + "\n")
    return app_dir, {**flower_env(), "FLWR_HOME": str(home)}


def flower_env() -> dict[str, str]:
    """This environment with the venv's bin first on PATH: the SuperLink and the SuperNode start
    `flower-superexec` (which runs the apps) by name."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def json_str(s: str) -> str:
    """A TOML basic string (JSON's escaping is TOML's for these paths and names)."""
    return json.dumps(s)


def run_server(settings: FederatedSettings, host: str, port: int, tls: Tls, supernode_keys: list[str],
               log=print) -> int:
    """Start the SuperLink, register SuperNode keys, submit the app and follow it to the end."""
    if supernode_keys and not (tls.enabled and tls.ca_certfile):
        raise ConfigError("--supernode-keys: SuperNode authentication needs TLS; give --ssl-certfile, --ssl-keyfile "
                          "and --ssl-ca-certfile too")
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    address = f"{local}:{port}"
    if wait_for_port(address, 0.5):
        raise ConfigError(f"{address}: the port is in use (another SuperLink?); pick another with --port")
    app_dir, env = write_app(settings, tls, address)
    out = Path(settings.out)
    args = [flower_bin("flower-superlink"), *tls.superlink_args(), "--host", host, "--port", str(port),
            "--database", str(out / "superlink.db")]
    if supernode_keys:
        args.append("--enable-supernode-auth")
    with open(out / "superlink.log", "ab") as sl_log:
        link = subprocess.Popen(args, env=env, stdout=sl_log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if not wait_for_port(address, 60):
                raise ConfigError(f"the SuperLink did not start on {address}: see {out / 'superlink.log'}")
            flwr = flower_bin("flwr")
            for key in supernode_keys:
                subprocess.run([flwr, "supernode", "register", key, CONNECTION], env=env, check=True,
                               stdout=subprocess.DEVNULL)
            log(f"SuperLink listening on {host}:{port}; start clients with "
                f"`trustfit federate client --server {address} --data FILE`")
            done = subprocess.run([flwr, "run", str(app_dir), CONNECTION, "--stream"], env=env)
            return done.returncode
        finally:
            os.killpg(link.pid, signal.SIGTERM)
            try:
                link.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(link.pid, signal.SIGKILL)


def check_client_data(task: str, data: str, dev: str | None, **columns) -> None:
    """Read the owner's files before joining, so a bad file fails here with its line, not in a round."""
    from trustfit.config import TrainConfig
    from trustfit.tasks import make_task

    for path in [data] + ([dev] if dev else []):
        if not Path(path).exists():
            raise DataError(f"{path}: no such file")
    make_task(TrainConfig(task=task, train=data, dev=dev, out=str(Path(data).parent), **columns)).load_data()


def default_client_name(data: str) -> str:
    """How reports name a client without --name: its file with the folder above (train.conll
    alone would name every owner alike)."""
    p = Path(data).resolve()
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def run_client(server: str, data: str, dev: str | None, name: str | None, port: int, root_certificates: str | None,
               auth_keys: tuple[str, str] | None, connect_timeout: float, log=print) -> int:
    """Start a SuperNode for this data owner; returns its exit code."""
    if not wait_for_port(server, connect_timeout):
        raise ConfigError(f"{server}: no SuperLink answered within {connect_timeout:g} s; check that `trustfit "
                          "federate server` runs there, the address and port, and the firewall (--connect-timeout "
                          "to wait longer)")
    name = name or default_client_name(data)
    node_config = f"data-path={json_str(str(Path(data).resolve()))} name={json_str(name)}"
    if dev:
        node_config += f" dev-path={json_str(str(Path(dev).resolve()))}"
    args = [flower_bin("flower-supernode"), "--superlink", server, "--port", str(port), "--node-config", node_config,
            "--max-wait-time", str(connect_timeout)]
    args += ["--root-certificates", root_certificates] if root_certificates else ["--insecure"]
    if auth_keys:
        args += ["--auth-supernode-private-key", auth_keys[0], "--auth-supernode-public-key", auth_keys[1]]
    log(f"SuperNode {name} joining {server} (data stays here: {data})")
    log("$ " + " ".join(shlex.quote(a) for a in args))
    node = subprocess.Popen(args, env=flower_env())

    def stop(signum, frame) -> None:  # a stopped client stops its SuperNode too
        node.terminate()
    signal.signal(signal.SIGTERM, stop)
    try:
        return node.wait()
    except KeyboardInterrupt:
        node.terminate()
        return node.wait()
