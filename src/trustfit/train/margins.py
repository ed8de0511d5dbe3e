"""Document-context margins on a share of the packs: each epoch a fresh random share of the packs
trains with their FLERT margins and the rest without (half the sub-tokens on CPU), so a run pays
for margins only on that share while the model still learns to read them at prediction, which
always feeds them."""

from __future__ import annotations

import random
from typing import Any, Sequence

from trustfit.encode.windows import Feature, Specials, without_margins
from trustfit.train.plugins import EpochData


class MarginShare(EpochData):
    """Per epoch from `from_epoch` on, `share` of the packs that have margins keep them (chosen
    deterministically in (seed, epoch), so a resumed or 2-process run trains the same inputs); the
    rest, and every pack of the epochs before (context late in training), are fed without
    (encode.windows.without_margins)."""

    def __init__(self, features: Sequence[Feature], specials: Specials, share: float, seed: int,
                 from_epoch: int = 0, planned_epochs: int = 1) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"context share {share} is outside [0, 1]")
        self.with_margins = list(features)
        self.bare = [without_margins(f, specials) for f in self.with_margins]
        self.framed = [i for i, f in enumerate(self.with_margins) if f.margins != (0, 0)]
        self.all_margins_sub_tokens = sum(len(f) for f in self.with_margins)
        # the setting (negative: counted from the end) and the first epoch with margins it names
        self.share, self.seed, self.setting = share, seed, from_epoch
        self.from_epoch = first_margin_epoch(from_epoch, planned_epochs)
        self.stats: dict[int, dict[str, Any]] = {}

    def on_train_start(self, trainer) -> None:
        """Count the start among the epochs the loop runs, which only it knows (with --max-steps
        they are not --epochs); the first epoch's packs are rebuilt when that moves the start."""
        start = first_margin_epoch(self.setting, trainer.n_epochs)
        if start != self.from_epoch:
            self.from_epoch, self.built_epoch = start, None

    def build(self, epoch: int) -> list[Feature]:
        framed = self.framed
        share = self.share if epoch >= self.from_epoch else 0.0
        keep = set(random.Random(f"margins:{self.seed}:{epoch}").sample(framed, round(share * len(framed))))
        feats = [self.with_margins[i] if i in keep else self.bare[i] for i in range(len(self.bare))]
        self.stats[epoch] = {"share": share, "packs_with_margins": len(keep), "packs_without": len(framed) - len(keep),
                             "sub_tokens": sum(len(f) for f in feats),
                             "sub_tokens_all_margins": self.all_margins_sub_tokens}
        return feats

    def summary(self) -> dict[str, Any]:
        """What each epoch fed (train_summary.json's `context_share`)."""
        return {"share": self.share, "from_epoch": self.from_epoch,
                "epochs": {str(e): s for e, s in sorted(self.stats.items())}}


def first_margin_epoch(context_from_epoch: int, epochs: int) -> int:
    """The first epoch (from 0) that trains with margins: `context_from_epoch`, counted back from
    the end of `epochs` when negative (-1: the last epoch, whatever the number of epochs)."""
    return context_from_epoch if context_from_epoch >= 0 else max(0, epochs + context_from_epoch)


def margins_from_epoch(cfg) -> int:
    """first_margin_epoch of a run's config."""
    return first_margin_epoch(cfg.context_from_epoch, cfg.epochs)


def margins_throughout(cfg) -> bool:
    """Whether `cfg` trains every pack with its margins in every epoch (no MarginShare needed)."""
    return cfg.context_share >= 1 and margins_from_epoch(cfg) == 0


def margin_share_for(cfg, features: Sequence[Feature], tokenizer, seed: int, say) -> MarginShare | None:
    """The plugin that trains a share of the packs without their margins (cfg.context_share < 1)
    or every pack without them before cfg.context_from_epoch, for a run or a federated party
    (`seed`: its batches' seed); None when every pack keeps them in every epoch, or none has any."""
    if margins_throughout(cfg) or not any(getattr(f, "margins", (0, 0)) != (0, 0) for f in features):
        return None
    if cfg.augment or cfg.cda:
        say(f"context_share {cfg.context_share}, context_from_epoch {cfg.context_from_epoch}: every pack keeps its "
            "margins in every epoch, since augmented copies are built per epoch from the encoded data")
        return None
    from trustfit.encode.tokenize import tokenizer_specials

    return MarginShare(features, tokenizer_specials(tokenizer), cfg.context_share, seed, cfg.context_from_epoch,
                       cfg.epochs)
