"""Jinja2 templates of the model card (Markdown and HTML), loaded from this package."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def env():
    from jinja2 import Environment, PackageLoader, select_autoescape

    e = Environment(loader=PackageLoader("trustfit.report", "templates"), autoescape=select_autoescape(enabled_extensions=("html.j2",)),
                    trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    e.filters["num"] = lambda x, d=2: "n/a" if x is None else f"{x:,.{d}f}"
    return e
