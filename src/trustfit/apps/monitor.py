"""Financial sentiment monitor: score a stream of news items, keep rolling windows per topic and
overall, and alert when the share of negative news surges above its recent baseline.

The alert rule (per key: "overall" and each topic), on count-based windows:

* window   = the last `window` items of the key; baseline = the `baseline` items before them;
* p_w, p_b = the share of items classified negative in each;
* z        = (p_w - p_b) / sqrt(p (1 - p) (1/n_w + 1/n_b)), p the pooled share (a two-proportion
             z-test: the baseline's own noise counts too);
* an alert fires when n_w >= min_count, n_b >= min_baseline, p_w - p_b >= margin and z >= z;
* after an alert the key is quiet until `window` new items have arrived (no alert storms).

Inputs are JSON lines {"time": ISO-8601, "text": ..., optional "topic", "source"}. Unparsable
lines and lines whose time goes backwards are reported with their line number and skipped."""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Iterator, Sequence


@dataclass(frozen=True)
class MonitorRule:
    window: int = 50
    baseline: int = 200
    min_count: int = 30
    min_baseline: int = 100
    margin: float = 0.2
    z: float = 3.0

    def validate(self) -> "MonitorRule":
        from trustfit.errors import ConfigError

        if self.window < 1 or self.baseline < 1 or self.min_count < 1 or self.min_baseline < 1:
            raise ConfigError("monitor window, baseline, min-count and min-baseline must be positive")
        if self.min_count > self.window or self.min_baseline > self.baseline:
            raise ConfigError("min-count cannot exceed window, nor min-baseline exceed baseline")
        if not 0 <= self.margin <= 1:
            raise ConfigError(f"monitor margin must be in [0, 1], got {self.margin}")
        return self


@dataclass
class NewsItem:
    line: int
    time: datetime
    text: str
    topic: str | None
    source: str | None
    p_negative: float = 0.0
    negative: bool = False


@dataclass
class Alert:
    time: str
    topic: str
    line: int
    window_count: int
    window_negative_share: float
    baseline_count: int
    baseline_negative_share: float
    z: float
    top_negative: list[dict]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _KeyState:
    recent: deque = field(default_factory=deque)  # the window
    past: deque = field(default_factory=deque)  # the baseline
    cooldown: int = 0
    seen: int = 0
    negatives: int = 0
    alerts: int = 0


class SurgeDetector:
    """The alert rule over a sequence of classified items, for any number of keys."""

    def __init__(self, rule: MonitorRule) -> None:
        self.rule = rule.validate()
        self.keys: dict[str, _KeyState] = {}

    def update(self, item: NewsItem) -> list[Alert]:
        keys = ["overall"] + ([item.topic] if item.topic else [])
        return [a for k in keys if (a := self._update_key(k, item)) is not None]

    def _update_key(self, key: str, item: NewsItem) -> Alert | None:
        r = self.rule
        st = self.keys.setdefault(key, _KeyState())
        st.seen += 1
        st.negatives += item.negative
        st.recent.append(item)
        if len(st.recent) > r.window:
            st.past.append(st.recent.popleft())
            if len(st.past) > r.baseline:
                st.past.popleft()
        if st.cooldown > 0:
            st.cooldown -= 1
            return None
        n_w, n_b = len(st.recent), len(st.past)
        if n_w < r.min_count or n_b < r.min_baseline:
            return None
        k_w, k_b = sum(i.negative for i in st.recent), sum(i.negative for i in st.past)
        p_w, p_b = k_w / n_w, k_b / n_b
        pooled = min(max((k_w + k_b) / (n_w + n_b), 1 / (n_w + n_b)), 1 - 1 / (n_w + n_b))
        z = (p_w - p_b) / math.sqrt(pooled * (1 - pooled) * (1 / n_w + 1 / n_b))
        if p_w - p_b >= r.margin and z >= r.z:
            st.cooldown = r.window
            st.alerts += 1
            top = sorted(st.recent, key=lambda i: -i.p_negative)[:5]
            return Alert(time=item.time.isoformat(), topic=key, line=item.line, window_count=n_w,
                         window_negative_share=round(p_w, 4), baseline_count=n_b,
                         baseline_negative_share=round(p_b, 4), z=round(z, 3),
                         top_negative=[{"time": i.time.isoformat(), "text": i.text, "p_negative": round(i.p_negative, 4),
                                        "line": i.line} for i in top if i.negative])
        return None

    def window_share(self, key: str = "overall") -> float:
        st = self.keys.get(key)
        return sum(i.negative for i in st.recent) / len(st.recent) if st and st.recent else 0.0


def parse_time(value) -> datetime:
    if not isinstance(value, str):
        raise ValueError("time must be an ISO-8601 string")
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    return datetime.fromisoformat(v)


def parse_stream(lines: Iterable[str], source: str = "<stdin>") -> Iterator[tuple[NewsItem | None, str | None]]:
    """(item, None) for a good line, (None, problem) for a line to skip; never raises."""
    last: datetime | None = None
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            if not isinstance(row, dict):
                raise ValueError("expected a JSON object")
            if "time" not in row or "text" not in row:
                raise ValueError(f"missing {'time' if 'time' not in row else 'text'!r}")
            t = parse_time(row["time"])
            text = str(row["text"]).strip()
            if not text:
                raise ValueError("'text' is empty")
        except (ValueError, json.JSONDecodeError) as e:
            yield None, f"{source}:{lineno}: skipped, {e}: {raw.strip()[:80]!r}"
            continue
        if last is not None and _naive(t) < _naive(last):
            yield None, f"{source}:{lineno}: skipped, time {row['time']} is before the previous item's ({last.isoformat()})"
            continue
        last = t
        yield NewsItem(lineno, t, text, row.get("topic"), row.get("source")), None


def _naive(t: datetime) -> datetime:
    return t.replace(tzinfo=None) if t.tzinfo is None else t.astimezone().replace(tzinfo=None)


Scorer = Callable[[Sequence[str]], Sequence[float]]


@dataclass
class MonitorResult:
    items: int
    skipped: list[str]
    alerts: list[Alert]
    series: list[tuple[str, float, float]]  # (time, overall window share, overall baseline share)
    per_topic: dict[str, dict]


def run_monitor(lines: Iterable[str], scorer: Scorer, rule: MonitorRule, threshold: float = 0.5,
                batch_size: int = 32, source: str = "<stdin>", on_alert: Callable[[Alert], None] | None = None,
                on_skip: Callable[[str], None] | None = None, ready: Callable[[], bool] | None = None) -> MonitorResult:
    """Score items in micro-batches (flushed when full, or when `ready()` says no more input is
    waiting: live streams get answers without waiting for a full batch) and run the detector."""
    det = SurgeDetector(rule)
    alerts: list[Alert] = []
    skipped: list[str] = []
    series: list[tuple[str, float, float]] = []
    buf: list[NewsItem] = []
    n = 0

    def flush() -> None:
        nonlocal n
        if not buf:
            return
        probs = scorer([i.text for i in buf])
        for item, p in zip(buf, probs):
            item.p_negative = float(p)
            item.negative = item.p_negative >= threshold
            for a in det.update(item):
                alerts.append(a)
                if on_alert:
                    on_alert(a)
            st = det.keys["overall"]
            base = sum(i.negative for i in st.past) / len(st.past) if st.past else float("nan")
            series.append((item.time.isoformat(), det.window_share(), base))
            n += 1
        buf.clear()

    for item, problem in parse_stream(lines, source):
        if problem:
            skipped.append(problem)
            if on_skip:
                on_skip(problem)
        else:
            buf.append(item)
        if len(buf) >= batch_size or (buf and ready is not None and not ready()):
            flush()
    flush()
    per_topic = {k: {"items": s.seen, "negative": s.negatives, "negative_share": round(s.negatives / max(s.seen, 1), 4),
                     "alerts": s.alerts} for k, s in det.keys.items()}
    return MonitorResult(n, skipped, alerts, series, per_topic)


def plot_series(result: MonitorResult, path, rule: MonitorRule) -> None:
    """Overall negative share in the window and its baseline over time, alerts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(result.series)))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(xs, [s[1] for s in result.series], label=f"negative share, last {rule.window} items")
    ax.plot(xs, [s[2] for s in result.series], label=f"baseline ({rule.baseline} items before)", alpha=0.7)
    index = {t: i for i, (t, _, _) in enumerate(result.series)}
    for a in result.alerts:
        if a.topic == "overall" and a.time in index:
            ax.axvline(index[a.time], color="red", ls="--", lw=1)
    if any(a.topic == "overall" for a in result.alerts):
        ax.plot([], [], color="red", ls="--", label="alert")
    ax.set_xlabel("item (time order)")
    ax.set_ylabel("share classified negative")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def model_scorer(model_dir: str, negative_label: str = "negative", batch_size: int = 64) -> Scorer:
    """p(negative) from a trained trustfit classifier (with its stored temperature)."""
    from trustfit.data.text import TextCorpus, TextExample
    from trustfit.errors import ModelError
    from trustfit.predict.classify import ClassifierPredictor

    pred = ClassifierPredictor.from_dir(model_dir, batch_size=batch_size)
    if negative_label not in pred.labels:
        raise ModelError(f"{model_dir}: the model has no label {negative_label!r} (labels: {', '.join(pred.labels)}); "
                         "pass --negative-label")
    j = pred.labels.index(negative_label)

    def score(texts: Sequence[str]) -> list[float]:
        corpus = TextCorpus([TextExample(t) for t in texts])
        return pred.predict(corpus).probs[:, j].tolist()

    return score
