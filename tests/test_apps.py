"""The monitor's alert rule on Financial PhraseBank streams, stream robustness, and the router's
decisions, coverage curve and input checks.

The rule tests score items with their gold labels (an oracle scorer) to measure the rule itself:
its false alerts on stationary streams and its delay on surges. test_classify_cli runs the whole
monitor with a trained model."""

import json
import random
from datetime import datetime, timedelta

import numpy as np
import pytest

from trustfit.apps.monitor import MonitorRule, parse_stream, run_monitor
from trustfit.apps.router import coverage_curve, load_answers, route
from trustfit.data.text import read_text_corpus
from trustfit.errors import ConfigError


@pytest.fixture(scope="module")
def fpb(data_dir):
    c = read_text_corpus(data_dir / "financial_phrasebank/Sentences_50Agree.txt")
    neg = [e.text for e in c if e.label == "negative"]
    other = [e.text for e in c if e.label != "negative"]
    return neg, other


def make_stream(neg, other, n, p_neg, rng, start=0, surge_at=None, surge_p=None, topic=None):
    t0 = datetime(2026, 1, 1)
    rows = []
    for i in range(n):
        p = surge_p if surge_at is not None and i >= surge_at else p_neg
        text = rng.choice(neg) if rng.random() < p else rng.choice(other)
        row = {"time": (t0 + timedelta(minutes=start + i)).isoformat(), "text": text}
        if topic:
            row["topic"] = topic
        rows.append(json.dumps(row))
    return rows


def oracle(neg):
    negs = set(neg)
    return lambda texts: [1.0 if t in negs else 0.0 for t in texts]


def test_stationary_streams_raise_few_false_alerts(fpb):
    neg, other = fpb
    rule = MonitorRule()
    runs, false_alerts = 40, 0
    for seed in range(runs):
        rng = random.Random(seed)
        res = run_monitor(make_stream(neg, other, 1000, 0.125, rng), oracle(neg), rule)
        false_alerts += len(res.alerts)
    # two-proportion z >= 3 and a 20-point margin: measured 0.025 false alerts per 1,000 items
    assert false_alerts / runs <= 0.1, false_alerts


def test_surge_is_detected_within_a_bounded_delay(fpb):
    neg, other = fpb
    rule = MonitorRule()
    delays = []
    for seed in range(20):
        rng = random.Random(seed)
        res = run_monitor(make_stream(neg, other, 800, 0.125, rng, surge_at=500, surge_p=0.5), oracle(neg), rule)
        after = [a for a in res.alerts if a.topic == "overall" and a.line > 500]
        assert after, f"seed {seed}: no alert after the surge"
        delays.append(after[0].line - 500)
        assert all(a.line > 500 for a in res.alerts if a.topic == "overall")
    assert max(delays) <= rule.window, delays
    assert np.median(delays) <= 30  # measured: median 27, max 47 items after the surge


def test_per_topic_alerts_and_top_items(fpb):
    neg, other = fpb
    rng = random.Random(0)
    calm = make_stream(neg, other, 600, 0.1, rng, topic="banks")
    hot = make_stream(neg, other, 600, 0.1, rng, topic="mining", surge_at=400, surge_p=0.7)
    merged = [x for pair in zip(calm, hot) for x in pair]
    # keep time order across the two topics
    merged.sort(key=lambda l: json.loads(l)["time"])
    res = run_monitor(merged, oracle(neg), MonitorRule())
    topics = {a.topic for a in res.alerts}
    assert "mining" in topics and "banks" not in topics
    a = next(a for a in res.alerts if a.topic == "mining")
    assert a.top_negative and all(t["p_negative"] == 1.0 for t in a.top_negative)
    assert res.per_topic["mining"]["alerts"] >= 1


def test_bad_lines_are_reported_and_skipped():
    lines = ['{"time": "2026-01-01T10:00:00", "text": "a"}', "not json",
             '{"time": "2026-01-01T09:00:00", "text": "earlier"}', '{"text": "no time"}',
             '{"time": "yesterday", "text": "b"}', '{"time": "2026-01-01T11:00:00Z", "text": "c"}']
    items = list(parse_stream(lines, "s.jsonl"))
    problems = [p for _, p in items if p]
    assert len(problems) == 4
    assert problems[0].startswith("s.jsonl:2: skipped") and "before the previous item" in problems[1]
    assert "missing 'time'" in problems[2] and problems[3].startswith("s.jsonl:5")
    res = run_monitor(lines, lambda t: [0.0] * len(t), MonitorRule())
    assert res.items == 2 and len(res.skipped) == 4


def test_monitor_rule_validation():
    with pytest.raises(ConfigError, match="min-count cannot exceed window"):
        MonitorRule(window=10, min_count=20).validate()
    with pytest.raises(ConfigError, match=r"margin must be in \[0, 1\]"):
        MonitorRule(margin=2).validate()


def test_router_decisions():
    labels = ["card_arrival", "lost_or_stolen_card", "top_up_failed"]
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    answers = {"card_arrival": "Cards arrive within 5 working days."}
    r = route(probs, labels, 0.6, answers, k=2)
    assert r[0].action == "answer" and r[0].reply == answers["card_arrival"] and len(r[0].top_k) == 2
    assert r[1].action == "handoff" and r[1].reply == "hand off to a human" and "0.400 < threshold 0.6" in r[1].reason
    assert r[2].action == "handoff" and "no reply template" in r[2].reason


def test_coverage_curve_operating_points():
    probs = np.array([[0.99, 0.01], [0.98, 0.02], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    gold = [0, 0, 0, 1, 0]
    cov = coverage_curve(probs, gold)
    assert cov["accuracy"] == pytest.approx(0.8)
    assert cov["at_precision"]["95"] == {"threshold": 0.9, "coverage": 0.6, "answered": 3}
    assert cov["curve"][0]["coverage"] == 1.0


def test_answers_file_checks(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("card_arrival: soon\nteleport: never\n")
    with pytest.raises(ConfigError, match="unknown intents teleport"):
        load_answers(p, ["card_arrival"])
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_answers(p, ["a"])
