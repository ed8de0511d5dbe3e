"""Evaluation by time: walk the later period in time order; at each rating, rank with only what
was known at that moment (the history plus the user's earlier ratings in the period).

* ranking events: each item the user went on to like (and had not rated before); its rank among
  all items the user had not rated: nDCG@10, HitRate@10, MRR; the top-10 lists give catalogue
  coverage and intra-list diversity (1 - mean pairwise cosine of the items' text embeddings);
* AUC: within each user, liked vs not-liked items they rated in the period, each scored at its moment;
* slices: all users, cold-start users (nothing in the history), warm users, and each user group.

Methods: each single signal (popularity, recency, genre, item-cf, zero-shot embedding), the
fine-tuned pair model on the stage-1 candidates, and the combined ranker. Two-stage methods rank
items outside the candidates after them, in stage-1 order."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trustfit.apps.recommend.data import InteractionLog
from trustfit.apps.recommend.history import known_events, walk
from trustfit.apps.recommend.metrics import coverage, expected_rank, hit_at, intra_list_diversity, mean_user_auc, \
    ndcg_at, reciprocal_rank
from trustfit.apps.recommend.model import Recommender
from trustfit.apps.recommend.ranker import cheap_scores, signal_matrix
from trustfit.apps.recommend.scorers import SIGNALS
from trustfit.errors import DataError

SINGLE = ("popularity", "recency", "genre", "item-cf", "embedding")
TWO_STAGE = ("pair", "combined")
METHODS = SINGLE + TWO_STAGE
K = 10


@dataclass
class _Tally:
    ranks: list[float] = field(default_factory=list)
    lists: list[list[int]] = field(default_factory=list)
    auc: dict = field(default_factory=lambda: defaultdict(lambda: ([], [])))

    def summary(self, n_items: int, vectors: np.ndarray) -> dict:
        a, auc_users = mean_user_auc(self.auc)
        r = self.ranks
        return {"auc": a, "auc_users": auc_users, "events": len(r),
                "ndcg@10": float(np.mean([ndcg_at(x, K) for x in r])) if r else None,
                "hitrate@10": float(np.mean([hit_at(x, K) for x in r])) if r else None,
                "mrr": float(np.mean([reciprocal_rank(x) for x in r])) if r else None,
                "coverage@10": coverage(self.lists, n_items),
                "diversity@10": float(np.mean([intra_list_diversity(x, vectors) for x in self.lists]))
                if self.lists else None}


def _two_stage_rank(score: np.ndarray, cands: np.ndarray, target: int, stage1: np.ndarray,
                    rankable: np.ndarray) -> float:
    pos = np.nonzero(cands == target)[0]
    if len(pos):
        return expected_rank(score[pos[0]], np.delete(score, pos[0]))
    rest = rankable.copy()
    rest[cands] = False
    rest[target] = False
    return len(cands) + expected_rank(stage1[target], stage1[rest])


def _rank_event(rec: Recommender, q, target: int, cheap: dict[str, np.ndarray], cands: np.ndarray,
                cand_feats: np.ndarray, n_items: int, index: dict[str, int]) -> dict[str, tuple[float, list[int]]]:
    """Each method's rank of the target among the items the user had not rated, and its top-K list."""
    rankable = np.ones(n_items, dtype=bool)
    rankable[[index[i] for i in q.seen]] = False
    others = rankable.copy()
    others[target] = False
    results = {}
    for m in SINGLE:
        s = cheap[m]
        order = [int(j) for j in np.argsort(-s, kind="stable") if rankable[j]][:K]
        results[m] = (expected_rank(s[target], s[others]), order)
    stage1 = rec.first_stage.stage1_score(q, cheap)
    for m in TWO_STAGE:
        s = rec.ranker.for_query(q).score(cand_feats) if m == "combined" else cand_feats[:, SIGNALS.index("pair")]
        results[m] = (_two_stage_rank(s, cands, target, stage1, rankable), [int(cands[j]) for j in np.argsort(-s)[:K]])
    return results


def evaluate(rec: Recommender, period: InteractionLog, history: InteractionLog | None = None,
             users: dict | None = None, max_events: int | None = None, seed: int = 0, batch: int = 32,
             say: Callable[[str], None] = lambda m: None) -> dict:
    """Metrics per method and slice, timings, and what was skipped."""
    if period.scale != rec.log.scale:
        raise DataError(f"{period.source}: holds {period.scale}s, but the model was trained on {rec.log.scale}s; "
                        "evaluate on a log of the same kind")
    period_events, skipped = known_events(period, rec.catalogue)
    if not period_events:
        raise DataError(f"{period.source}: no interaction names an item of the model's catalogue")
    start = period_events[0].time
    hist = history if history is not None else rec.log
    hist_events, _ = known_events(hist, rec.catalogue)
    kept = [e for e in hist_events if e.time < start]
    cut = len(hist_events) - len(kept)
    users = users if users is not None else rec.users
    tl = rec.timeline(kept)
    ctx = rec.context(tl)
    profile = rec.profile_builder()
    history_users = set(tl.rated)
    labelled = [k for k, e in enumerate(period_events) if rec.policy.label(e.value, period.scale) is not None]
    liked = [k for k in labelled if rec.policy.label(period_events[k].value, period.scale) == 1]
    rng = np.random.default_rng(seed)
    ranked = set(liked) if max_events is None or max_events >= len(liked) else \
        set(rng.choice(liked, max_events, replace=False).tolist())
    labelled_set = set(labelled)
    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    timing = {"stage1_seconds": 0.0, "stage2_seconds": 0.0, "ranked_queries": 0}
    pending: list = []
    resampled = 0

    def slices(user: str) -> list[str]:
        out = ["all", "warm" if user in history_users else "cold-start"]
        for attr in ("gender", "age_band"):
            if users and user in users and attr in users[user]:
                out.append(f"{attr}={users[user][attr]}")
        return out

    def flush() -> None:
        queries = [p[1] for p in pending]
        targets = [ctx.index[p[0].item] for p in pending]
        t0 = time.perf_counter()
        cheap = cheap_scores(queries, ctx)
        t1 = time.perf_counter()
        rank_rows = [k for k, p in enumerate(pending) if p[2]]
        cands = {k: rec.first_stage.candidates(queries[k], cheap[k], True, ctx.index) for k in rank_rows}
        t2 = time.perf_counter()
        cand_feats = dict(zip(rank_rows, signal_matrix([queries[k] for k in rank_rows], [cands[k] for k in rank_rows],
                                                       ctx, [cheap[k] for k in rank_rows])))
        t3 = time.perf_counter()
        # stage 1 per ranked user: its share of the catalogue-wide signals plus its candidate pick
        timing["stage1_seconds"] += (t1 - t0) * len(rank_rows) / len(pending) + (t2 - t1)
        timing["stage2_seconds"] += t3 - t2
        timing["ranked_queries"] += len(rank_rows)
        target_feats = signal_matrix(queries, [np.array([t]) for t in targets], ctx, cheap)
        for k, (e, q, do_rank) in enumerate(pending):
            t = targets[k]
            f = target_feats[k]
            like = rec.policy.label(e.value, period.scale) == 1
            scores_t = {m: f[0, SIGNALS.index(m)] for m in SINGLE + ("pair",)}
            scores_t["combined"] = rec.ranker.for_query(q).score(f)[0]
            for sl in slices(e.user):
                for m in METHODS:
                    tallies[(m, sl)].auc[e.user][0 if like else 1].append(float(scores_t[m]))
            if not do_rank:
                continue
            results = _rank_event(rec, q, t, cheap[k], cands[k], cand_feats[k], len(ctx.ids), ctx.index)
            for sl in slices(e.user):
                for m, (r, top) in results.items():
                    tallies[(m, sl)].ranks.append(r)
                    tallies[(m, sl)].lists.append(top)
        pending.clear()

    done = 0
    say(f"evaluating {len(labelled)} rated events ({len(ranked)} ranked over the catalogue) ...")
    for k, (e, t) in enumerate(walk(tl, period_events)):
        if k not in labelled_set:
            continue
        if e.item in t.rated.get(e.user, {}):  # rated again: not a new item to rank
            resampled += 1
            continue
        pending.append((e, t.query(e.user, e.time, profile), k in ranked))
        if len(pending) >= batch:
            flush()
            done += batch
            if done % (batch * 20) == 0:
                say(f"  {done} of {len(labelled)} rated events")
    if pending:
        flush()
    present = {sl for _, sl in tallies}
    names = [sl for sl in ("all", "cold-start", "warm") if sl in present] + sorted(present - {"all", "cold-start", "warm"})
    results = {m: {sl: tallies[(m, sl)].summary(len(ctx.ids), ctx.item_vectors) for sl in names if (m, sl) in tallies}
               for m in METHODS}
    n_ranked = max(timing["ranked_queries"], 1)
    return {"methods": results, "slices": names,
            "events": {"period": len(period), "skipped_unknown_item": skipped["skipped_unknown_item"],
                       "labelled": len(labelled), "liked": len(liked), "ranked": timing["ranked_queries"],
                       "rerated_skipped": resampled, "history_events": len(kept),
                       "history_events_ignored_overlapping_period": cut,
                       "cold_start_users": len({e.user for e in period_events} - history_users)},
            "timing": {"stage1_ms_per_user": 1000 * timing["stage1_seconds"] / n_ranked,
                       "stage2_ms_per_user": 1000 * timing["stage2_seconds"] / n_ranked,
                       "candidates_at_most": rec.first_stage.size}}
