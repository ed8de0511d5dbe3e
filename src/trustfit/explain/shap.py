"""SHAP's partition explainer (Owen values over a hierarchy of word groups) with shap's text
masker over words, not sub-tokens: the masker's "tokens" are the words the reader produced and
a removed word becomes one mask token. Deterministic; `max_evals` bounds the model calls."""

from __future__ import annotations

import time

import numpy as np

from trustfit.explain.base import Attribution, Target, Text
from trustfit.explain.model import ExplainableModel, ExplainError

_MASKED = -1  # the masker's id for a removed word


def min_evals(n_words: int) -> int:
    """Fewest evaluations for which the partition tree splits down to single words."""
    return 2 * n_words + 2


class ShapExplainer:
    name = "shap"
    stochastic = False

    def __init__(self, model: ExplainableModel, max_evals: int | None = None, batch_size: int = 64,
                 seed: int = 0) -> None:
        if max_evals is not None and max_evals < 4:
            raise ExplainError(f"shap needs a budget of at least 4 evaluations, got {max_evals}")
        self.model = model
        self.max_evals, self.batch_size = max_evals, batch_size
        self.settings = {"algorithm": "partition", "max_evals": max_evals or "auto: max(500, 2 * words + 2)",
                         "masker": "text, over words"}

    def explain(self, text: Text, target: Target) -> Attribution:
        import shap

        n = len(text)
        budget = self.max_evals if self.max_evals is not None else max(500, min_evals(n))
        if budget < min_evals(n):
            raise ExplainError(f"shap: a budget of {budget} evaluations cannot give each of {n} words its own "
                               f"score; use at least {min_evals(n)} (--samples)")
        t0 = time.perf_counter()
        m = self.model
        before = m.passes
        settings = dict(self.settings, max_evals=budget)
        if n == 1:  # one player: its Shapley value is f(x) - f(masked); shap's partition tree needs two
            full, empty = m.score(text, target, [[True], [False]])
            return Attribution(text.words, [float(full - empty)], target, self.name, settings, m.passes - before,
                               time.perf_counter() - t0, text.text, text.offsets, {"base_value": float(empty)})

        def word_tokenizer(s, return_offsets_mapping=True, **_):
            # the masker tokenises the canonical string " ".join(words): one token per word
            parts = s.split(" ") if s else []
            out = {"input_ids": list(range(len(parts)))}
            if return_offsets_mapping:
                offs, p = [], 0
                for w in parts:
                    offs.append((p, p + len(w)))
                    p += len(w) + 1
                out["offset_mapping"] = offs
            return out

        def f(ids):
            return m.score(text, target, np.asarray(ids) != _MASKED)

        masker = shap.maskers.Text(word_tokenizer, mask_token=_MASKED, collapse_mask_token=False,
                                   output_type="token_ids")
        explainer = shap.PartitionExplainer(f, masker)
        canonical = " ".join(w.replace(" ", "_") for w in text.words)
        sv = explainer([canonical], max_evals=budget, batch_size=self.batch_size, silent=True)
        scores = np.asarray(sv.values[0], dtype=float).tolist()
        return Attribution(text.words, scores, target, self.name, settings, m.passes - before,
                           time.perf_counter() - t0, text.text, text.offsets,
                           {"base_value": float(np.asarray(sv.base_values).ravel()[0])})
