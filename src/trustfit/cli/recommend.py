"""`trustfit recommend`: text-aware recommendation (train a pair model on users' behaviour, rank
candidates in two stages, evaluate by time)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from trustfit.cli.common import app, fail
from trustfit.errors import DataError, TrustfitError

recommend_app = typer.Typer(help=__doc__, no_args_is_help=True)
app.add_typer(recommend_app, name="recommend")


@recommend_app.command("train")
def train_cmd(
    ratings: str = typer.Option(..., "--ratings", help="interaction log: MovieLens u.data, or JSONL/CSV with user, "
                                "item, rating or label, time"),
    items: str = typer.Option(..., "--items", help="catalogue: MovieLens u.item, or CSV/JSONL with id, text "
                              "(title, genres optional)"),
    out: Path = typer.Option(..., "--out", help="recommender folder"),
    summaries: Optional[str] = typer.Option(None, "--summaries", help="CSV of title, summary joined by title "
                                            "(movie_wiki.csv)"),
    users: Optional[str] = typer.Option(None, "--users", help="user attributes (u.user) for per-group evaluation"),
    log_format: str = typer.Option("auto", "--log-format", help="auto, movielens, jsonl or csv"),
    dev_share: float = typer.Option(0.1, "--dev-share", help="last share of the log by time kept as the dev period"),
    positive: float = typer.Option(4.0, "--positive", help="ratings at or above this are liked"),
    negative: float = typer.Option(2.0, "--negative", help="ratings at or below this are not liked"),
    neutral: str = typer.Option("skip", "--neutral", help="ratings in between: skip, liked or not-liked"),
    negatives: int = typer.Option(1, "--negatives", min=0, help="sampled unrated items per liked one (0 = none)"),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", min=1, help="keep the most recent N training pairs"),
    profile_tokens: int = typer.Option(64, "--profile-tokens", min=1, help="sub-tokens of profile text (liked titles, "
                                       "most recent first)"),
    max_length: int = typer.Option(128, "--max-length", min=16, help="sub-tokens of profile + item"),
    collaborative: int = typer.Option(100, "--collaborative", min=0, help="stage-1 candidates by item-item collaborative "
                                      "filtering"),
    text: int = typer.Option(50, "--text", min=0, help="stage-1 candidates by text-embedding similarity"),
    popular: int = typer.Option(50, "--popular", min=1, help="stage-1 candidates by popularity"),
    fit_events: int = typer.Option(300, "--fit-events", min=1, help="dev-period events (of warm and of cold-start users each) the combiner is fitted on"),
    model: Optional[str] = typer.Option(None, "--model", help="backbone (default: packaged all-MiniLM-L6-v2)"),
    epochs: int = typer.Option(2, "--epochs", min=1),
    lr: float = typer.Option(1e-4, "--lr"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    seed: int = typer.Option(42, "--seed"),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Fine-tune a pair model (profile text, item text) -> liked on the log's earlier part, embed
    the catalogue, and fit the final ranker's weights on the dev period (the log's last part)."""
    from trustfit.apps.recommend.history import LikePolicy
    from trustfit.apps.recommend.model import RecommendSettings, train_recommender
    from trustfit.apps.recommend.ranker import FirstStage

    s = RecommendSettings(ratings=ratings, items=items, out=str(out), summaries=summaries, users=users,
                          log_format=log_format, dev_share=dev_share, policy=LikePolicy(positive, negative, neutral),
                          negatives=negatives, max_pairs=max_pairs, profile_tokens=profile_tokens,
                          max_length=max_length, first_stage=FirstStage(collaborative, text, popular),
                          fit_events=fit_events, model=model, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                          precision=precision)
    try:
        meta = train_recommender(s, overwrite, quiet, say=(lambda m: None) if quiet else
                                 (lambda m: typer.echo(m, err=True)))
    except TrustfitError as e:
        fail(e)
    _say_weights(meta)
    typer.echo(f"recommender saved to {out}", err=True)


def _say_weights(meta: dict) -> None:
    for group, w in meta["combiner"].items():
        typer.echo(f"combiner weights, {group} users (per standard deviation, {w['fitted_on']['events']} events): " +
                   ", ".join(f"{f} {x:+.2f}" for f, x in zip(w["features"], w["weights"])), err=True)


def _ids_file(path: str, what: str, known) -> list[str]:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: {what} file not found")
    lines = [(i, line.strip()) for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    if known is not None:
        bad = [f"{p}:{i}: unknown item {x!r}" for i, x in lines if x not in known]
        if bad:
            from trustfit.errors import join_problems

            raise DataError(join_problems(f"{p}: {len(bad)} {what} name items the catalogue lacks "
                                          "(use the catalogue's item ids):", bad))
    return [x for _, x in lines]


@recommend_app.command("rank")
def rank_cmd(
    model: Path = typer.Option(..., "--model", help="recommender folder"),
    user: Optional[str] = typer.Option(None, "--user", help="a user id of the log"),
    users: Optional[str] = typer.Option(None, "--users", help="file of user ids, one a line"),
    profile: Optional[str] = typer.Option(None, "--profile", help="file of item ids a person liked, one a line, "
                                          "oldest first (a user the log does not know)"),
    history: Optional[str] = typer.Option(None, "--history", help="more interactions (any log format) after the "
                                          "model's log"),
    candidates: str = typer.Option("all", "--candidates", help="all (two stages) or a file of item ids, one a line"),
    exclude_seen: bool = typer.Option(True, "--exclude-seen/--include-seen", help="leave out items already rated"),
    top_k: int = typer.Option(10, "--top-k", min=1),
    as_json: bool = typer.Option(False, "--json", help="one JSON line a user"),
) -> None:
    """Recommend: stage 1 picks candidates (collaborative filtering, text similarity, popularity),
    the pair model re-scores them, the fitted combiner ranks; each item's signals and contributions
    are shown."""
    import numpy as np

    from trustfit.apps.recommend.data import Interaction, read_interactions
    from trustfit.apps.recommend.history import known_events
    from trustfit.apps.recommend.model import Recommender, recommend

    try:
        if sum(x is not None for x in (user, users, profile)) != 1:
            raise TrustfitError("give exactly one of --user ID, --users FILE or --profile FILE")
        rec = Recommender.load(model)
        events = list(rec.log.events)
        if history:
            extra, report = known_events(read_interactions(history), rec.catalogue)
            if report["skipped_unknown_item"]:
                typer.echo(f"{history}: {report['skipped_unknown_item']} interactions with unknown items skipped",
                           err=True)
            events = sorted(events + extra, key=lambda e: e.time)
        now = (events[-1].time + 1) if events else 0
        ids = [user] if user else _ids_file(users, "user", None) if users else ["<profile>"]
        if profile:
            liked = _ids_file(profile, "profile items", rec.catalogue.items)
            top = 5.0 if rec.log.scale == "rating" else 1.0
            events += [Interaction("<profile>", iid, top, now - 1) for iid in liked]
        cand = None if candidates == "all" else \
            np.array([rec.catalogue.index[i] for i in _ids_file(candidates, "candidates", rec.catalogue.items)])
    except TrustfitError as e:
        fail(e)
    tl = rec.timeline(events)
    for u in ids:
        if u not in tl.rated:
            typer.echo(f"user {u}: no history (cold start): ranked by popularity and the pair model's prior", err=True)
    ctx = rec.context(tl)
    prof = rec.profile_builder()
    records = recommend(rec, [tl.query(u, now, prof) for u in ids], ctx, top_k, exclude_seen, cand)
    for r in records:
        if as_json:
            sys.stdout.write(json.dumps({"user": r["user"], "items": r["items"]}, ensure_ascii=False) + "\n")
            continue
        typer.echo(f"user {r['user']}" + (" (cold start)" if r["cold_start"] else ""))
        for k, it in enumerate(r["items"], 1):
            parts = ", ".join(f"{n} {v['contribution']:+.2f}" for n, v in it["features"].items())
            typer.echo(f"  {k:2d}. {it['title']}  score {it['score']:.3f}  ({parts})")


@recommend_app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Option(..., "--model", help="recommender folder"),
    ratings: str = typer.Option(..., "--ratings", help="the later period's interactions (any log format)"),
    history: Optional[str] = typer.Option(None, "--history", help="the earlier interactions (default: the log the "
                                          "model was trained on, cut at the period's start)"),
    users: Optional[str] = typer.Option(None, "--users", help="user attributes for per-group metrics (default: as "
                                        "trained)"),
    max_events: Optional[int] = typer.Option(None, "--max-events", min=1, help="rank only a sample of N liked events "
                                             "(AUC still uses every rated one)"),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="default: MODEL/evaluation"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Evaluate by time: rank at each rating with only the history known then; AUC, nDCG@10,
    HitRate@10, MRR, coverage and diversity per method, for cold-start users and each user group."""
    from trustfit.apps.recommend import report
    from trustfit.apps.recommend.data import read_interactions, read_users
    from trustfit.apps.recommend.evaluate import evaluate
    from trustfit.apps.recommend.model import Recommender
    from trustfit.auditing import file_sha256

    try:
        rec = Recommender.load(model)
        period = read_interactions(ratings)
        hist = read_interactions(history) if history else None
        attrs = read_users(users) if users else None
        result = evaluate(rec, period, hist, attrs, max_events, seed,
                          say=(lambda m: None) if quiet else (lambda m: typer.echo(m, err=True)))
    except TrustfitError as e:
        fail(e)
    result = {"kind": "recommendation", "schema_version": 1,
              "data": {"path": ratings, "sha256": file_sha256(ratings)},
              "history": history or str(model / "interactions.jsonl"), "model": str(model),
              "settings": {"max_events": max_events, "seed": seed}, **result}
    dest = out or model / "evaluation"
    report.write(result, dest)
    typer.echo(report.table(result))
    typer.echo(f"written to {dest} (result.json, report.md, metrics.png)", err=True)


@recommend_app.command("refit")
def refit_cmd(
    model: Path = typer.Option(..., "--model", help="recommender folder"),
    fit_events: int = typer.Option(300, "--fit-events", min=1, help="dev-period events (of warm and of cold-start users "
                                   "each)"),
    seed: int = typer.Option(42, "--seed"),
) -> None:
    """Fit the final ranker's weights again on the folder's dev period, keeping the pair model."""
    from trustfit.apps.recommend.model import refit_combiner

    try:
        meta = refit_combiner(model, fit_events, seed)
    except TrustfitError as e:
        fail(e)
    _say_weights(meta)
