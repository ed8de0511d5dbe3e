"""Micro-batches (`micro_batch_tokens`): a batch cut into passes within a sub-token budget
(property test of the cut) gives the gradient of the whole batch in one pass (checked on the tiny
model with dropout off), and plugins that add to the gradients see the whole batch."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings, strategies as st

from trustfit.encode.batching import collate
from trustfit.encode.windows import Feature
from trustfit.train.loop import adds_gradients, label_count, split_by_tokens
from trustfit.train.plugins import Plugin, ProgressBar


def _feature(n: int, labelled: int | None = None, seed: int = 0) -> Feature:
    rng = random.Random(seed)
    labelled = n if labelled is None else labelled
    labels = [rng.randrange(3) if i < labelled else -100 for i in range(n)]
    return Feature(input_ids=[rng.randrange(5, 90) for _ in range(n)], labels=labels, positions=[], words=[])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=0, max_size=40), st.one_of(st.none(), st.integers(1, 400)))
def test_a_cut_keeps_every_feature_and_each_pass_within_the_budget(lengths, budget):
    feats = [_feature(n, seed=i) for i, n in enumerate(lengths)]
    parts = split_by_tokens(feats, budget)
    assert sorted(id(f) for p in parts for f in p) == sorted(id(f) for f in feats)
    if budget is None or len(feats) < 2:
        assert len(parts) == 1
        return
    for part in parts:
        assert part and (len(part) == 1 or len(part) * max(len(f) for f in part) <= budget)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= max(sizes) // 2 + 1  # near-equal runs, not a long one and scraps


def test_label_count_skips_ignored_positions_and_counts_classification_rows():
    assert label_count({"labels": torch.tensor([[1, -100, 2], [-100, -100, 0]])}) == 3
    assert label_count({"labels": torch.tensor([0, 1, 1])}) == 3
    assert label_count({"input_ids": torch.zeros(4, 7)}) == 4


def test_only_plugins_that_implement_on_backward_add_gradients():
    class Adds(Plugin):
        def on_backward(self, trainer, batch, loss) -> None: ...

    class Duck:
        def on_backward(self, trainer, batch, loss) -> None: ...

    assert adds_gradients(Adds()) and adds_gradients(Duck())
    assert not adds_gradients(ProgressBar(enabled=False)) and not adds_gradients(object())


def _gradients(model_dir, feats, budget, plugins=()):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from trustfit.data.schema import LabelSchema
    from trustfit.models.backbone import load_token_classifier
    from trustfit.train.loop import LoopSettings, Trainer

    torch.manual_seed(0)
    model = load_token_classifier(str(model_dir), LabelSchema.from_types(["PER"]))
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    s = LoopSettings(epochs=1, max_steps=None, batch_size=len(feats), lr=0.0, weight_decay=0.0, warmup_ratio=0,
                     max_grad_norm=0, seed=0, eval_every=None, checkpoint_every=10, pool_batches=1,
                     save_checkpoints=False, micro_batch_tokens=budget)
    AcceleratorState._reset_state(reset_partial_state=False)  # fp32: an earlier test's bf16 state would linger
    trainer = Trainer(model, feats, s, Accelerator(cpu=True, mixed_precision="no"), None, list(plugins), model_dir)
    seen = []
    trainer.collate_fn = lambda part, pad: seen.append(len(part)) or collate(part, pad)
    loss = trainer._plain_step(list(feats))
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, seen


def test_micro_batches_give_the_whole_batch_gradient(tiny_model_dir):
    feats = [_feature(n, labelled=max(1, n - 3 * (i % 3)), seed=i) for i, n in enumerate([5, 9, 14, 20, 23, 30])]
    loss_one, grads_one, seen_one = _gradients(tiny_model_dir, feats, None)
    loss_cut, grads_cut, seen_cut = _gradients(tiny_model_dir, feats, 48)
    assert seen_one == [6] and len(seen_cut) >= 3
    assert loss_cut == pytest.approx(loss_one, rel=1e-5)
    assert grads_one.keys() == grads_cut.keys()
    for name, g in grads_one.items():
        torch.testing.assert_close(grads_cut[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_a_plugin_that_adds_gradients_sees_the_whole_batch(tiny_model_dir):
    class Records(Plugin):
        sizes: list[int] = []

        def on_backward(self, trainer, batch, loss) -> None:
            self.sizes.append(len(batch["input_ids"]))

    plugin = Records()
    feats = [_feature(n, seed=i) for i, n in enumerate([10, 20, 30, 40])]
    _, _, seen = _gradients(tiny_model_dir, feats, 40, plugins=[plugin])
    assert seen == [4] and plugin.sizes == [4]
