"""Command line: one module per command group (`trustfit COMMAND --help` for each).

train.py: train, evaluate; predict.py: predict, split; apps.py: monitor, route;
explain.py: explain; audit.py: the `audit` group (one subcommand per audit kind); mitigate.py: the `mitigate` group;
serve.py: serve; scan.py: scan; federate.py: the `federate` group (simulation, server, client);
recommend.py: the `recommend` group (train, rank, evaluate);
run.py: run (the experiment pipeline), report (the model card)."""

from __future__ import annotations

# importing a module registers its commands, in the order `trustfit --help` lists them
from trustfit.cli import train  # noqa: F401,I001
from trustfit.cli import predict  # noqa: F401
from trustfit.cli import explain  # noqa: F401
from trustfit.cli import audit  # noqa: F401
from trustfit.cli import mitigate  # noqa: F401
from trustfit.cli import serve  # noqa: F401
from trustfit.cli import run  # noqa: F401
from trustfit.cli import apps  # noqa: F401
from trustfit.cli import scan  # noqa: F401
from trustfit.cli import federate  # noqa: F401
from trustfit.cli import recommend  # noqa: F401
from trustfit.cli.common import app


def main() -> None:  # pragma: no cover
    app()


__all__ = ["app", "main"]
