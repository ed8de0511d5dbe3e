"""LIME (Ribeiro et al. 2016) with `lime`'s LimeTextExplainer: position-specific word features
(bow=False, so a removed word becomes one mask token and NER spans stay in place), a fixed seed
and a sample budget; the model is called on all samples at once (batched, length-sorted)."""

from __future__ import annotations

import time
import zlib

import numpy as np

from trustfit.explain.base import Attribution, Target, Text
from trustfit.explain.model import ExplainableModel, ExplainError

_SENTINEL = "\ue000"  # a private-use character: LIME's mask string, never a real word


class LimeExplainer:
    name = "lime"
    stochastic = True

    def __init__(self, model: ExplainableModel, samples: int | None = None, seed: int = 0,
                 kernel_width: float = 25.0) -> None:
        if samples is not None and samples < 10:
            raise ExplainError(f"lime needs at least 10 samples, got {samples}")
        self.model = model
        self.samples, self.seed, self.kernel_width = samples, seed, kernel_width
        self.settings = {"samples": samples or "auto: max(500, 2 * words)", "seed": seed,
                         "kernel_width": kernel_width, "feature_selection": "none"}

    def explain(self, text: Text, target: Target) -> Attribution:
        from lime.lime_text import LimeTextExplainer

        n = len(text)
        budget = self.samples if self.samples is not None else max(500, 2 * n)
        if budget <= n:
            raise ExplainError(f"lime: {budget} samples cannot fit {n} word weights; use more than {n} (--samples)")
        t0 = time.perf_counter()
        m = self.model
        before = m.passes
        words = [w.replace(" ", "_") for w in text.words]

        def classifier_fn(strings):
            keep = np.array([[tok != _SENTINEL for tok in s.split(" ")] for s in strings], dtype=bool)
            v = m.score(text, target, keep)
            return np.stack([v, v], axis=1)  # LIME reads column 0; it wants a 2-D array

        # seeded per text so that explaining a set of texts in any order gives the same answers
        seed = int(np.random.default_rng([self.seed, zlib.crc32(text.text.encode("utf-8"))]).integers(2**31))
        lte = LimeTextExplainer(split_expression=lambda s: s.split(" "), bow=False, mask_string=_SENTINEL,
                                random_state=seed, kernel_width=self.kernel_width, feature_selection="none")
        exp = lte.explain_instance(" ".join(words), classifier_fn, labels=(0,), num_features=n, num_samples=budget)
        scores = [0.0] * n
        for i, wgt in exp.as_map()[0]:
            scores[int(i)] = float(wgt)
        return Attribution(text.words, scores, target, self.name, dict(self.settings, samples=budget),
                           m.passes - before, time.perf_counter() - t0, text.text, text.offsets,
                           {"local_r2": float(exp.score)})
