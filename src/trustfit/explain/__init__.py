"""Word-level explanations for NER and classification: one protocol (`Explainer.explain(text,
target) -> Attribution`), one file per method, a registry by name, faithfulness measures and an
HTML/PNG rendering shared with the model card and the server."""

from __future__ import annotations

from typing import Any

from trustfit.explain.base import Attribution, Explainer, Target, Text
from trustfit.explain.model import ExplainableModel, ExplainError, load_explainable, select_targets

# name -> "module:Class"; a new method is one file and one line here
EXPLAINERS: dict[str, str] = {
    "ig": "trustfit.explain.ig:IntegratedGradients",
    "gxi": "trustfit.explain.gxi:GradientXInput",
    "shap": "trustfit.explain.shap:ShapExplainer",
    "lime": "trustfit.explain.lime:LimeExplainer",
    "random": "trustfit.explain.random:RandomExplainer",
}

# --samples means the method's own budget knob
_BUDGET_KEY = {"ig": "steps", "shap": "max_evals", "lime": "samples"}


def check_method(name: str) -> str:
    if name not in EXPLAINERS:
        raise ExplainError(f"unknown explanation method {name!r}: use one of {', '.join(EXPLAINERS)}")
    return name


def make_explainer(name: str, model: ExplainableModel, samples: int | None = None, **settings: Any) -> Explainer:
    """An explainer by registry name; `samples` goes to the method's budget (ig steps, shap
    max_evals, lime samples) and is ignored by the others."""
    import importlib

    module, cls = EXPLAINERS[check_method(name)].split(":")
    if samples is not None and name in _BUDGET_KEY:
        settings[_BUDGET_KEY[name]] = samples
    return getattr(importlib.import_module(module), cls)(model, **settings)


__all__ = ["Attribution", "Explainer", "Target", "Text", "ExplainableModel", "ExplainError", "EXPLAINERS",
           "check_method", "make_explainer", "load_explainable", "select_targets"]
