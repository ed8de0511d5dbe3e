"""Exception hierarchy: every user-facing failure is a TrustfitError with a message that says
where the problem is and how to fix it (the CLI prints it without a traceback)."""

from __future__ import annotations


class TrustfitError(Exception):
    """Base class for errors caused by input, configuration or environment, not by a bug."""


class ConfigError(TrustfitError):
    """A configuration file or option is invalid."""


class DataError(TrustfitError):
    """An input data file is malformed or inconsistent with the model."""


class ModelError(TrustfitError):
    """A model folder or hub id cannot be used."""


class OutputError(TrustfitError):
    """An output location cannot be written as asked (e.g. it already holds another run)."""


def join_problems(header: str, problems: list[str], limit: int = 20) -> str:
    """Format several collected problems as one message, so a user fixes them in one pass."""
    shown = problems[:limit]
    more = len(problems) - len(shown)
    text = header + "\n" + "\n".join(f"  - {p}" for p in shown)
    if more > 0:
        text += f"\n  ... and {more} more"
    return text
