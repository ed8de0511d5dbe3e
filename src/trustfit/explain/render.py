"""Show an explanation: a self-contained HTML snippet (inline styles, no scripts, no external
assets, every piece of input text escaped) that colours each word by its score, used by the CLI,
the model card and the web page; and a PNG bar chart of the word scores."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable

from trustfit.explain.base import Attribution

METHOD_NAMES = {"ig": "integrated gradients", "gxi": "gradient x input", "shap": "SHAP (partition)",
                "lime": "LIME", "random": "random scores (sanity floor)"}
_SUPPORT = (22, 163, 74)  # green: the word raises the explained value
_OPPOSE = (220, 38, 38)  # red: the word lowers it


def _colour(score: float, scale: float) -> str:
    if scale <= 0 or score == 0:
        return "transparent"
    r, g, b = _SUPPORT if score > 0 else _OPPOSE
    return f"rgba({r},{g},{b},{min(1.0, abs(score) / scale) * 0.8:.3f})"


def _settings(a: Attribution) -> str:
    keys = {"ig": ("steps", "baseline"), "shap": ("max_evals",), "lime": ("samples", "seed"), "random": ("seed",)}
    parts = [f"{k} {a.settings[k]}" for k in keys.get(a.method, ()) if k in a.settings]
    return f" ({', '.join(parts)})" if parts else ""


def attribution_html(a: Attribution) -> str:
    """One explanation as an HTML fragment: a header naming the prediction and the method, the
    text with each word on a background whose colour and strength show its score (hover shows
    the number), the target span underlined, and a one-line legend."""
    scale = max((abs(s) for s in a.scores), default=0.0)
    t = a.target
    span = range(t.start, t.end) if t.start is not None else range(0)
    if t.task == "ner":
        prob = f" (tags' joint probability {t.probability:.2f})" if t.probability is not None else ""
        what = f"entity <q>{html.escape(' '.join(a.words[t.start:t.end]))}</q> as <strong>{html.escape(t.label)}</strong>{prob}"
    else:
        prob = f" ({t.probability:.2f})" if t.probability is not None else ""
        what = f"class <strong>{html.escape(t.label)}</strong>{prob}"
    parts = []
    text = a.text if a.text else " ".join(a.words)
    offsets = a.offsets if a.offsets else []
    pos = 0
    for i, (w, s) in enumerate(zip(a.words, a.scores)):
        if offsets:
            start, end = offsets[i]
            parts.append(html.escape(text[pos:start]))
            word, pos = text[start:end], end
        else:
            parts.append(" " if i else "")
            word = w
        style = f"background:{_colour(s, scale)};border-radius:3px;padding:1px 2px;"
        if i in span:
            style += "border-bottom:2px solid #111827;font-weight:600;"
        parts.append(f'<span style="{style}" title="{html.escape(w)}: {s:+.4f}">{html.escape(word)}</span>')
    if offsets:
        parts.append(html.escape(text[pos:]))
    method = html.escape(METHOD_NAMES.get(a.method, a.method) + _settings(a))
    return (
        '<div class="trustfit-explanation" style="font-family:system-ui,-apple-system,Segoe UI,sans-serif;'
        'border:1px solid #d1d5db;border-radius:6px;padding:10px 12px;margin:8px 0;max-width:100%;'
        'overflow-wrap:anywhere;color:#111827;background:#ffffff;">'
        f'<div style="font-size:13px;color:#374151;margin-bottom:6px;">Why {what}: {method}</div>'
        f'<div style="font-size:16px;line-height:1.9;">{"".join(parts)}</div>'
        '<div style="font-size:12px;color:#6b7280;margin-top:6px;">'
        f'<span style="background:rgba({",".join(map(str, _SUPPORT))},0.6);padding:0 4px;border-radius:3px;">supports</span> '
        f'<span style="background:rgba({",".join(map(str, _OPPOSE))},0.6);padding:0 4px;border-radius:3px;">opposes</span> '
        f'the prediction; strength relative to the strongest word ({scale:.3g}).</div></div>'
    )


def html_page(snippets: Iterable[str], title: str = "trustfit explanations") -> str:
    """A complete, self-contained HTML document holding explanation snippets."""
    body = "\n".join(snippets)
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title></head>"
            f'<body style="margin:16px;background:#f9fafb;">\n<h1 style="font-family:system-ui,sans-serif;'
            f'font-size:20px;">{html.escape(title)}</h1>\n{body}\n</body></html>\n')


def attribution_png(a: Attribution, path: str | Path) -> None:
    """Horizontal bars of the word scores, in text order (green supports, red opposes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(a.words)
    fig, ax = plt.subplots(figsize=(6.5, max(1.8, 0.28 * n + 1.0)))
    colours = ["#16a34a" if s > 0 else "#dc2626" for s in a.scores]
    ax.barh(range(n), a.scores, color=colours)
    ax.set_yticks(range(n), labels=a.words, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="#111827", linewidth=0.8)
    t = a.target
    what = f"{' '.join(a.words[t.start:t.end])!r} as {t.label}" if t.task == "ner" else f"class {t.label}"
    ax.set_title(f"{METHOD_NAMES.get(a.method, a.method)}: why {what}", fontsize=9)
    ax.set_xlabel("word score")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
