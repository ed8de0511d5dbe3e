"""`trustfit explain`: word attributions for one prediction or many (a class, or each entity
span), printed as a table and written as JSON lines, an HTML page and PNG bar charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from trustfit.cli.common import app, fail, read_lines
from trustfit.errors import TrustfitError


def _print(a) -> None:
    t = a.target
    what = f"{' '.join(a.words[t.start:t.end])!r} as {t.label}" if t.task == "ner" else f"class {t.label}"
    prob = f" (p={t.probability:.3f})" if t.probability is not None else ""
    typer.echo(f"{a.method}: why {what}{prob}  [{1000 * a.seconds:.0f} ms, {a.forward_passes} passes]")
    typer.echo("  " + "  ".join(f"{w} {s:+.3f}" for w, s in zip(a.words, a.scores)))


@app.command()
def explain(
    model: str = typer.Option(..., "--model", help="trained model folder (NER or classifier)"),
    text: Optional[str] = typer.Option(None, "--text", help="the text to explain"),
    input: Optional[str] = typer.Option(None, "--input", help="file with one text a line (- = stdin)"),
    method: str = typer.Option("ig", "--method", help="ig, gxi, shap, lime or random"),
    entity: Optional[int] = typer.Option(None, "--entity", help="NER: explain only entity N (0 = first found)"),
    target: Optional[str] = typer.Option(None, "--target", help="classify: explain this class (default: predicted)"),
    samples: Optional[int] = typer.Option(None, "--samples",
                                          help="budget: ig steps (12), shap evaluations / lime samples "
                                               "(max(500, 2 x words))"),
    seed: int = typer.Option(0, "--seed", help="seed of the stochastic methods (lime, random)"),
    baseline: str = typer.Option("pad", "--baseline", help="ig and gxi: pad or mask (gxi also none)"),
    html: Optional[Path] = typer.Option(None, "--html", help="write a self-contained HTML page here"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the attributions as JSON lines here"),
    png: Optional[Path] = typer.Option(None, "--png", help="bar chart PNG (NAME-2.png ... for more than one)"),
    encoding: str = typer.Option("utf-8", "--encoding"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no table on stdout"),
) -> None:
    """Explain predictions word by word: which words made the model predict this class, or this
    entity span, and how strongly (integrated gradients by default)."""
    from trustfit.explain import Text, check_method, load_explainable, make_explainer, select_targets
    from trustfit.explain.render import attribution_html, attribution_png, html_page

    try:
        check_method(method)
        if (text is None) == (input is None):
            raise TrustfitError("give either --text or --input FILE (- for stdin)")
        lines = [text] if text is not None else read_lines(input, encoding)
        where = "--text" if text is not None else input
        empty = [i for i, l in enumerate(lines, 1) if not l.strip()]
        if empty:
            raise TrustfitError(f"{where}: " + ("the text is empty" if text is not None else
                                f"lines {', '.join(map(str, empty[:10]))} are empty") + "; give text to explain")
        view = load_explainable(model)
        settings = {"baseline": baseline} if method in ("ig", "gxi") else {}
        explainer = make_explainer(method, view, samples=samples, seed=seed, **settings)
        attributions = []
        for line in lines:
            t = Text.from_string(line)
            for tg in select_targets(view, t, entity, target):
                attributions.append(explainer.explain(t, tg))
    except TrustfitError as e:
        fail(e)
    if not quiet:
        for a in attributions:
            _print(a)
        if not attributions:
            typer.echo("no entities found: nothing to explain", err=True)
    if json_out:
        json_out.write_text("".join(json.dumps(a.to_json(), ensure_ascii=False) + "\n" for a in attributions),
                            encoding="utf-8")
    if html:
        html.write_text(html_page([attribution_html(a) for a in attributions]), encoding="utf-8")
    if png:
        for i, a in enumerate(attributions):
            attribution_png(a, png if i == 0 else png.with_name(f"{png.stem}-{i + 1}{png.suffix}"))
