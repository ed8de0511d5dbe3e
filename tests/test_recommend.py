"""Text-aware recommendation: readers and the title join, history without future leakage, metrics
against hand-computed values, bad input, and a tiny model trained, ranking and evaluated."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import _cli_ok
from trustfit.apps.recommend.catalogue import Catalogue, Item, read_catalogue, title_key
from trustfit.apps.recommend.data import Interaction, InteractionLog, read_interactions, read_users
from trustfit.apps.recommend.history import NO_HISTORY, LikePolicy, ProfileBuilder, Timeline, known_events, \
    training_pairs, walk
from trustfit.apps.recommend.metrics import auc, coverage, expected_rank, hit_at, intra_list_diversity, \
    mean_user_auc, ndcg_at, reciprocal_rank
from trustfit.errors import DataError

ML = "movielens100k"
GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


# ---------------------------------------------------------------- readers and the title join

def test_title_join_on_the_shared_files_reports_its_counts(data_dir):
    cat = read_catalogue(data_dir / ML / "u.item", data_dir / ML / "movie_wiki.csv")
    j = cat.join
    assert (j["items"], j["summaries"]) == (1682, 1524)
    assert j["matched_exact"] == 1535 and j["matched_where_accents_were_lost"] == 6
    assert j["matched"] == 1541 and j["unmatched_items"] == 141 and j["ambiguous_items"] == 0
    assert j["unused_summaries"] == []  # every summary found its item
    assert len(j["titles_under_several_ids"]) == 18 and j["titles_under_several_ids"]["Chasing Amy (1997)"] == \
        ["246", "268"]
    # the accent lost in u.item is restored from the summary's title; an item without summary keeps its genres
    assert cat.items["543"].title == "Misérables, Les (1995)" and cat.items["543"].summary
    assert cat.items["8"].summary is None and cat.items["8"].text == "Babe (1995) Genres: Children's, Comedy, Drama."


def test_title_key_moves_articles_and_drops_accents():
    assert title_key("Shawshank Redemption, The (1994)") == title_key("The Shawshank Redemption (1994)")
    assert title_key("Cérémonie, La (1995)") == title_key("La Ceremonie (1995)")
    assert title_key("Heat (1995)") != title_key("Heat (1986)")


def test_movielens_log_reads_in_time_order(data_dir):
    log = read_interactions(data_dir / ML / "u.data")
    assert len(log) == 79999 and len(log.users) == 751 and log.scale == "rating"
    times = [e.time for e in log]
    cut = datetime(1998, 3, 7, 2, 21, 9, tzinfo=timezone.utc).timestamp()
    assert times == sorted(times) and times[-1] < cut  # the data set's cut (README)
    users = read_users(data_dir / ML / "u.user")
    assert users["1"]["gender"] == "M" and users["1"]["age_band"] == "under 25"


def test_generic_logs_and_catalogue(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"user": "u", "item": "a", "label": 1, "time": "2024-01-01T00:00:00Z"}\n'
                                        '{"user": "u", "item": "b", "label": 0, "time": 1700000000}\n')
    log = read_interactions(tmp_path / "log.jsonl")
    assert log.scale == "label" and [e.item for e in log] == ["b", "a"] and log.events[1].time == 1704067200
    (tmp_path / "log.csv").write_text("user,item,rating,time\nu,a,4.5,10\n")
    assert read_interactions(tmp_path / "log.csv").events[0].value == 4.5
    (tmp_path / "items.csv").write_text('id,title,text,genres\na,Alpha,"A film, about a.",Drama|War\nb,,Beta text,\n')
    cat = read_catalogue(tmp_path / "items.csv")
    assert cat.items["a"].genres == ("Drama", "War") and cat.items["b"].title == "Beta text"


def test_malformed_log_lines_name_file_and_line(tmp_path):
    p = tmp_path / "u.data"
    p.write_text("1\t2\t5\t100\n1\t3\t5\n2\tx\tfive\t100\n3\t4\t4\tyesterday\n")
    with pytest.raises(DataError) as e:
        read_interactions(p)
    msg = str(e.value)
    assert f"{p}:2: expected user<TAB>item<TAB>rating<TAB>unix time" in msg
    assert f"{p}:3: field 'rating' is 'five', not a number" in msg
    assert f"{p}:4: field 'time' is 'yesterday'; give unix seconds or an ISO-8601 time" in msg
    q = tmp_path / "mixed.jsonl"
    q.write_text('{"user": "u", "item": "a", "rating": 4, "time": 1}\n{"user": "u", "item": "b", "label": 1, '
                 '"time": 2}\n{"user": "u", "item": "c", "label": 3, "time": 3}\n')
    with pytest.raises(DataError, match=r"rows mix 'rating' and 'label'") as e:
        read_interactions(q)
    assert f"{q}:3: field 'label' is 3; use 1 (liked) or 0 (not liked)" in str(e.value)


def test_items_the_catalogue_lacks_are_counted_and_skipped():
    cat = Catalogue({"a": Item("a", "A")}, "<memory>")
    log = InteractionLog([Interaction("u", "a", 5, 1), Interaction("u", "zz", 5, 2), Interaction("v", "zz", 1, 3)],
                         "<memory>")
    kept, report = known_events(log, cat)
    assert [e.item for e in kept] == ["a"]
    assert report["skipped_unknown_item"] == 2 and report["unknown_items"] == ["zz"]


# ---------------------------------------------------------------- history: only the past

def _catalogue(n: int) -> Catalogue:
    return Catalogue({str(i): Item(str(i), f"i{i}") for i in range(n)}, "<memory>")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 7), st.integers(1, 5), st.integers(0, 30)),
                min_size=1, max_size=60), st.integers(0, 3))
def test_history_never_looks_into_the_future(rows, negatives):
    cat = _catalogue(8)
    events = sorted((Interaction(f"u{u}", str(i), float(r), t) for u, i, r, t in rows), key=lambda e: e.time)
    policy = LikePolicy()
    profile = ProfileBuilder(cat, None, budget=10_000)
    # the state handed to each event holds strictly earlier events only
    for e, tl in walk(Timeline(cat, policy, "rating"), events):
        assert tl.now < e.time
        q = tl.query(e.user, e.time, profile)
        earlier_liked = [x.item for x in events if x.user == e.user and x.time < e.time and x.value >= 4]
        assert q.liked == earlier_liked[::-1]  # most recent first, nothing from now or later
        assert q.seen == {x.item for x in events if x.user == e.user and x.time < e.time}
        assert q.popularity.sum() == pytest.approx(np.log1p(
            np.bincount([int(x.item) for x in events if x.time < e.time], minlength=8)).sum())
    rated = {u: {x.item for x in events if x.user == u} for u in {x.user for x in events}}
    pairs = training_pairs(events, Timeline(cat, policy, "rating"), profile, negatives, seed=1, exclude=rated)
    for row in pairs.rows:
        if row.get("sampled"):  # a sampled negative is an item the user never rated
            assert row["item_id"] not in rated[row["user"]] and row["label"] == "not liked"
        if row["profile"] == NO_HISTORY:
            assert not [x for x in events if x.user == row["user"] and x.time < row["time"] and x.value >= 4]
            continue
        for title in row["profile"].split("; "):
            assert any(x.user == row["user"] and x.item == title[1:] and x.time < row["time"] and x.value >= 4
                       for x in events)
    labelled = [e for e in events if e.value >= 4 or e.value <= 2]
    assert len(pairs.rows) - pairs.sampled_negatives == len(labelled)
    assert pairs.skipped_neutral == len(events) - len(labelled)


def test_profile_text_stays_within_its_token_budget():
    cat = Catalogue({str(i): Item(str(i), f"title number {i}") for i in range(20)}, "<memory>")
    words = ProfileBuilder(cat, lambda t: len(t.split()), budget=10)
    assert words([str(i) for i in range(20)]) == "title number 0; title number 1; title number 2"
    assert words([]) == NO_HISTORY


def test_split_by_time_puts_no_moment_in_both_periods():
    log = InteractionLog([Interaction("u", "a", 5, t) for t in (1, 2, 3, 4, 4, 4, 5)], "<memory>")
    early, late, cut = log.split_by_time(0.3)
    assert max(e.time for e in early) < cut == min(e.time for e in late) == 4
    assert len(early) + len(late) == len(log)
    with pytest.raises(DataError, match="dev share must be between 0 and 1"):
        log.split_by_time(1.5)


# ---------------------------------------------------------------- metrics, by hand

def test_ranking_metrics_match_hand_computed_values():
    ranks = [1, 3, 12]
    assert np.mean([ndcg_at(r) for r in ranks]) == pytest.approx((1 + 0.5 + 0) / 3)  # 1/log2(4) = 0.5
    assert np.mean([hit_at(r) for r in ranks]) == pytest.approx(2 / 3)
    assert np.mean([reciprocal_rank(r) for r in ranks]) == pytest.approx((1 + 1 / 3 + 1 / 12) / 3)
    assert expected_rank(0.5, np.array([0.9, 0.5, 0.5, 0.1])) == 3.0  # one above, two ties count one
    assert coverage([[0, 1], [1, 2]], 10) == 0.3
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert intra_list_diversity([0, 1, 2], v) == pytest.approx(1 - (0 + 1 + 0) * 2 / 6)


def test_auc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = random.Random(3)
    pos = [rng.choice([0.1, 0.4, 0.7, 0.9]) for _ in range(13)]
    neg = [rng.choice([0.1, 0.2, 0.4, 0.6]) for _ in range(9)]
    assert auc(pos, neg) == pytest.approx(roc_auc_score([1] * 13 + [0] * 9, pos + neg))
    assert auc(pos, []) is None
    assert mean_user_auc({"a": ([1.0], [0.0]), "b": ([0.0], [1.0]), "c": ([1.0], [])}) == (0.5, 2)


# ---------------------------------------------------------------- a tiny model end to end

def _write_movielens_like(d, seed: int = 0):
    """30 films (15 Action, 15 Romance); 24 users, each a fan of one genre (5 for it, 1 for the other),
    rating over time; users 21-24 appear only at the end (cold start in the dev period)."""
    rng = random.Random(seed)
    lines = []
    for i in range(1, 31):
        flags = ["0"] * 19
        flags[GENRES.index("Action" if i <= 15 else "Romance")] = "1"
        lines.append(f"{i}|Film {i} (1990)|01-Jan-1990||http://x|" + "|".join(flags))
    (d / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    (d / "u.genre").write_text("".join(f"{g}|{k}\n" for k, g in enumerate(GENRES)))
    (d / "wiki.csv").write_text("movie_title,wiki_summary\n" + "".join(
        f"Film {i} (1990),\"Film {i} is a 1990 {'action thriller with car chases' if i <= 15 else 'romantic drama about love'}.\"\n"
        for i in range(1, 31, 2)))
    (d / "u.user").write_text("".join(f"{u}|{20 + u}|{'MF'[u % 2]}|other|00000\n" for u in range(1, 25)))
    rows, t = [], 1_000_000
    for step in range(14):
        for u in range(1, 25):
            if u > 20 and step < 11:
                continue
            t += rng.randint(10, 100)
            item = rng.randint(1, 30)
            fan_of_action = u % 2 == 0
            rows.append(f"{u}\t{item}\t{5 if (item <= 15) == fan_of_action else 1}\t{t}")
    (d / "u.data").write_text("\n".join(rows) + "\n")
    return d


@pytest.fixture(scope="module")
def tiny_recommender(tmp_path_factory, tiny_model_dir):
    d = _write_movielens_like(tmp_path_factory.mktemp("ml"))
    out = d / "rec"
    _cli_ok(["recommend", "train", "--ratings", d / "u.data", "--items", d / "u.item", "--summaries", d / "wiki.csv",
             "--users", d / "u.user", "--out", out, "--model", tiny_model_dir, "--dev-share", "0.25", "--epochs", "1",
             "--batch-size", "16", "--fit-events", "20", "--collaborative", "8", "--text", "4", "--popular", "4",
             "--precision", "fp32", "-q"])
    return d, out


def test_tiny_recommender_trains_and_records_its_log(tiny_recommender):
    d, out = tiny_recommender
    meta = json.loads((out / "recommender.json").read_text())
    assert meta["title_join"]["matched"] == 15 and meta["title_join"]["unmatched_items"] == 15
    assert meta["periods"]["train"] + meta["periods"]["dev"] == len((d / "u.data").read_text().splitlines())
    assert set(meta["combiner"]) == {"warm", "cold"} and len(meta["combiner"]["warm"]["weights"]) == 6
    logged = [json.loads(line) for line in (out / "interactions.jsonl").read_text().splitlines()]
    dev = [json.loads(line) for line in (out / "dev_period.jsonl").read_text().splitlines()]
    assert min(r["time"] for r in dev) == meta["split_time"] > max(r["time"] for r in logged[: meta["periods"]["train"]])
    pairs = [json.loads(line) for line in (out / "pairs" / "train.jsonl").read_text().splitlines()]
    assert all(p["time"] < meta["split_time"] for p in pairs) and {p["label"] for p in pairs} == {"liked", "not liked"}
    assert (out / "pair_model" / "model.safetensors").exists() and (out / "item_vectors.safetensors").exists()


def test_tiny_recommender_ranks_with_contributions(tiny_recommender, tmp_path):
    d, out = tiny_recommender
    r = _cli_ok(["recommend", "rank", "--model", out, "--user", "2", "--top-k", "5", "--json"])
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["user"] == "2" and len(rec["items"]) == 5
    seen = {line.split("\t")[1] for line in (d / "u.data").read_text().splitlines() if line.split("\t")[0] == "2"}
    assert not seen & {it["item"] for it in rec["items"]}  # seen items left out
    top = rec["items"][0]
    assert top["title"].startswith("Film ") and set(top["features"]) == {"pair", "embedding", "item-cf", "genre",
                                                                        "popularity", "recency"}
    meta = json.loads((out / "recommender.json").read_text())
    bias = meta["combiner"]["warm"]["bias"]
    assert top["score"] == pytest.approx(bias + sum(f["contribution"] for f in top["features"].values()), abs=1e-3)
    scores = [it["score"] for it in rec["items"]]
    assert scores == sorted(scores, reverse=True)
    # a person the log does not know, by the items they liked; and a fixed candidate list
    (tmp_path / "liked.txt").write_text("1\n3\n")
    (tmp_path / "cands.txt").write_text("2\n4\n20\n")
    r = _cli_ok(["recommend", "rank", "--model", out, "--profile", tmp_path / "liked.txt", "--candidates",
                 tmp_path / "cands.txt", "--json"])
    assert sorted(it["item"] for it in json.loads(r.stdout.strip().splitlines()[-1])["items"]) == ["2", "20", "4"]
    r = _cli_ok(["recommend", "rank", "--model", out, "--user", "nobody", "--top-k", "3"])
    assert "user nobody: no history (cold start)" in r.output and "3. Film" in r.output


def test_tiny_recommender_bad_input_messages(tiny_recommender, tmp_path):
    from typer.testing import CliRunner

    from trustfit.cli import app

    d, out = tiny_recommender
    (tmp_path / "cands.txt").write_text("2\nno-such-film\n")
    cases = [(["recommend", "rank", "--model", out, "--user", "2", "--candidates", tmp_path / "cands.txt"],
              f"{tmp_path / 'cands.txt'}:2: unknown item 'no-such-film'"),
             (["recommend", "rank", "--model", out], "give exactly one of --user ID, --users FILE or --profile FILE"),
             (["recommend", "rank", "--model", tmp_path, "--user", "2"], "not a recommender folder"),
             (["recommend", "train", "--ratings", d / "u.data", "--items", d / "u.item", "--out", out],
              "is not empty; choose another --out or pass --overwrite")]
    for args, message in cases:
        r = CliRunner().invoke(app, [str(a) for a in args])
        assert r.exit_code == 2, (args, r.output)
        assert message in " ".join(r.output.split()), (args, r.output)


def test_tiny_recommender_evaluates_by_time(tiny_recommender):
    d, out = tiny_recommender
    r = _cli_ok(["recommend", "evaluate", "--model", out, "--ratings", out / "dev_period.jsonl", "-q"])
    assert "| combined |" in r.stdout
    res = json.loads((out / "evaluation" / "result.json").read_text())
    assert res["kind"] == "recommendation" and res["events"]["history_events_ignored_overlapping_period"] > 0
    assert res["slices"][:3] == ["all", "cold-start", "warm"] and "gender=F" in res["slices"]
    assert res["events"]["cold_start_users"] == 4
    for m in ("popularity", "item-cf", "embedding", "pair", "combined"):
        a = res["methods"][m]["all"]
        assert a["events"] == res["events"]["ranked"] > 0
        assert 0 <= a["ndcg@10"] <= a["hitrate@10"] <= 1 and 0 < a["mrr"] <= 1 and 0 <= a["auc"] <= 1
    # genre is the whole signal here: a user's liked genre predicts the next liked item
    assert res["methods"]["genre"]["warm"]["auc"] > 0.9
    assert (out / "evaluation" / "metrics.png").stat().st_size > 1000
    assert "## cold-start" in (out / "evaluation" / "report.md").read_text()


def test_refit_fits_the_combiner_again_on_the_dev_period(tiny_recommender, tmp_path):
    import shutil

    _, out = tiny_recommender
    copy = tmp_path / "rec"
    shutil.copytree(out, copy)
    r = _cli_ok(["recommend", "refit", "--model", copy, "--fit-events", "5", "--seed", "3"])
    assert "combiner weights, warm users" in r.output
    warm = json.loads((copy / "recommender.json").read_text())["combiner"]["warm"]["fitted_on"]
    assert warm["events"] <= 5 and warm["events"] <= warm["events_found_by_stage1"]
