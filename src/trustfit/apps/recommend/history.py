"""What is known at a moment: a time-ordered walk over the log that answers each event with the
state before it (strictly earlier events only), the user's profile text, and the training pairs.

Profile text = the titles of the items the user liked before that moment, most recent first, cut
to a sub-token budget so that profile and item fit the model's input together."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from trustfit.apps.recommend.catalogue import Catalogue
from trustfit.apps.recommend.data import Interaction, InteractionLog
from trustfit.errors import ConfigError

LIKED, NOT_LIKED = "liked", "not liked"
NO_HISTORY = "no history yet"  # the profile text of a user with nothing liked before (cold start)
RECENT_DAYS = 30


@dataclass(frozen=True)
class LikePolicy:
    """How behaviour becomes a label: rating >= positive liked, <= negative not liked, between them
    `neutral` (skip, liked, not-liked). Label logs (1/0) are read as they are."""

    positive: float = 4.0
    negative: float = 2.0
    neutral: str = "skip"

    def validate(self) -> "LikePolicy":
        if self.negative >= self.positive:
            raise ConfigError(f"--negative ({self.negative}) must be below --positive ({self.positive})")
        if self.neutral not in ("skip", "liked", "not-liked"):
            raise ConfigError(f"--neutral must be skip, liked or not-liked (got {self.neutral!r})")
        return self

    def label(self, value: float, scale: str) -> int | None:
        """1 liked, 0 not liked, None skipped."""
        if scale == "label":
            return int(value)
        if value >= self.positive:
            return 1
        if value <= self.negative:
            return 0
        return None if self.neutral == "skip" else int(self.neutral == "liked")

    def liked(self, value: float, scale: str) -> bool:
        return value >= (1.0 if scale == "label" else self.positive)


@dataclass
class Query:
    """A user at a moment, as the ranker sees them: only what happened strictly before `time`."""

    user: str
    time: int
    liked: list[str]  # item ids, most recent first
    seen: set[str]
    profile: str
    popularity: np.ndarray  # log(1 + interactions so far) per catalogue item
    recency: np.ndarray  # log(1 + interactions in the last RECENT_DAYS) per catalogue item

    @property
    def cold(self) -> bool:
        return not self.liked


class ProfileBuilder:
    """Profile text within a sub-token budget (token counts cached per item)."""

    def __init__(self, catalogue: Catalogue, count_tokens: Callable[[str], int] | None, budget: int = 64,
                 max_items: int = 50) -> None:
        self.catalogue, self.count_tokens, self.budget, self.max_items = catalogue, count_tokens, budget, max_items
        self._cost: dict[str, int] = {}

    def __call__(self, liked_recent_first: Sequence[str]) -> str:
        parts, used = [], 0
        for iid in liked_recent_first[: self.max_items]:
            title = self.catalogue.items[iid].title
            if iid not in self._cost:
                self._cost[iid] = self.count_tokens(title + ";") if self.count_tokens else len(title.split()) + 1
            if used + self._cost[iid] > self.budget and parts:
                break
            parts.append(title)
            used += self._cost[iid]
        return "; ".join(parts) if parts else NO_HISTORY


class Timeline:
    """The state of the log up to a moment: per user what they rated and liked (in order), per item
    how often it was rated overall and recently. Fed in time order."""

    def __init__(self, catalogue: Catalogue, policy: LikePolicy, scale: str) -> None:
        self.catalogue, self.policy, self.scale = catalogue, policy, scale
        self.index = catalogue.index
        self.counts = np.zeros(len(catalogue), dtype=np.float32)
        self.recent_counts = np.zeros(len(catalogue), dtype=np.float32)
        self._recent: deque[tuple[int, int]] = deque()
        self.liked: dict[str, list[str]] = defaultdict(list)  # oldest first
        self.rated: dict[str, dict[str, float]] = defaultdict(dict)
        self.now = -math.inf

    def add(self, e: Interaction) -> None:
        if e.time < self.now:
            raise ValueError("Timeline.add: events must come in time order")
        self.now = e.time
        i = self.index[e.item]
        self.counts[i] += 1
        self.recent_counts[i] += 1
        self._recent.append((e.time, i))
        self.rated[e.user][e.item] = e.value
        if self.policy.liked(e.value, self.scale):
            self.liked[e.user].append(e.item)

    def _expire(self, time: int) -> None:
        while self._recent and self._recent[0][0] < time - RECENT_DAYS * 86400:
            self.recent_counts[self._recent.popleft()[1]] -= 1

    def query(self, user: str, time: int, profile: ProfileBuilder) -> Query:
        self._expire(time)
        liked = self.liked.get(user, [])[::-1]
        return Query(user, time, liked, set(self.rated.get(user, ())), profile(liked),
                     np.log1p(self.counts), np.log1p(self.recent_counts))


def walk(timeline: Timeline, events: Iterable[Interaction]) -> Iterator[tuple[Interaction, Timeline]]:
    """Yield each event with the timeline holding only strictly earlier events, then add it:
    events sharing a timestamp never see each other."""
    pending: list[Interaction] = []
    for e in events:
        if pending and e.time != pending[0].time:
            for p in pending:
                timeline.add(p)
            pending = []
        yield e, timeline
        pending.append(e)
    for p in pending:
        timeline.add(p)


def known_events(log: InteractionLog, catalogue: Catalogue) -> tuple[list[Interaction], dict]:
    """The events whose item the catalogue has, and a report of the ones skipped."""
    kept = [e for e in log if e.item in catalogue]
    missing = sorted({e.item for e in log if e.item not in catalogue})
    return kept, {"events": len(log), "skipped_unknown_item": len(log) - len(kept),
                  "unknown_items": missing[:20], "unknown_item_count": len(missing)}


@dataclass
class PairSet:
    rows: list[dict] = field(default_factory=list)
    skipped_neutral: int = 0
    sampled_negatives: int = 0


def training_pairs(events: Sequence[Interaction], timeline: Timeline, profile: ProfileBuilder, negatives: int = 0,
                   seed: int = 0, exclude: dict[str, set[str]] | None = None) -> PairSet:
    """(profile before the event, item text, liked / not liked) for each labelled event, and
    `negatives` sampled items per liked one (items the user never rated in `exclude`, drawn by
    popularity so far) labelled not liked. The timeline is advanced past the events."""
    rng = np.random.default_rng(seed)
    ids = np.array(timeline.catalogue.ids)
    texts = {iid: it.text for iid, it in timeline.catalogue.items.items()}
    out = PairSet()
    for e, tl in walk(timeline, events):
        label = tl.policy.label(e.value, tl.scale)
        if label is None:
            out.skipped_neutral += 1
            continue
        liked_before = tl.liked.get(e.user, [])[::-1]
        text = profile(liked_before)
        out.rows.append({"profile": text, "item": texts[e.item], "label": LIKED if label else NOT_LIKED,
                         "user": e.user, "item_id": e.item, "time": e.time})
        if label and negatives:
            never = (exclude or {}).get(e.user, set()) | set(tl.rated.get(e.user, ())) | {e.item}
            weights = (tl.counts + 1.0) ** 0.75
            weights[[tl.index[i] for i in never if i in tl.index]] = 0
            if weights.sum() <= 0:
                continue
            picks = rng.choice(len(ids), size=min(negatives, int((weights > 0).sum())), replace=False,
                               p=weights / weights.sum())
            for j in picks:
                out.rows.append({"profile": text, "item": texts[ids[j]], "label": NOT_LIKED, "user": e.user,
                                 "item_id": str(ids[j]), "time": e.time, "sampled": True})
                out.sampled_negatives += 1
    return out
