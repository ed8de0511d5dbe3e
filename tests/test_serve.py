"""The HTTP service: every endpoint and limit through FastAPI's test client, Schemathesis over
the OpenAPI schema, a real uvicorn process on loopback under concurrent clients (micro-batched
answers equal one-by-one answers; SIGTERM finishes in-flight requests), and the web page in
headless Chromium through Playwright."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from trustfit.cli import app as cli_app
from trustfit.serve.app import create_app
from trustfit.serve.settings import ServeSettings

KEY = "k" * 24
NER_TEXT = "the report by Maria Lopez was read in Paris today ."


@pytest.fixture(scope="module")
def clf_client(keyword_classifier):
    app = create_app(ServeSettings(model=str(keyword_classifier), max_texts=4, max_chars=200, max_body_bytes=4000))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def ner_client(ner_model):
    with TestClient(create_app(ServeSettings(model=str(ner_model)))) as c:
        yield c


def test_predict_classifier_equals_cli_predict(clf_client, keyword_classifier, tmp_path):
    texts = ["the superb report was read today", "an awful day in the city", ""]
    r = clf_client.post("/v1/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    assert [g["text"] for g in got] == texts
    (tmp_path / "in.txt").write_text("\n".join(texts[:2]) + "\n")
    cli = CliRunner().invoke(cli_app, ["predict", "--model", str(keyword_classifier), str(tmp_path / "in.txt")])
    assert cli.exit_code == 0, cli.output
    want = [json.loads(l) for l in cli.output.splitlines() if l.startswith("{")]
    for g, w in zip(got, want):
        w.pop("line")
        assert g == w
    assert got[0]["label"] == "positive" and got[1]["label"] == "negative" and len(got[2]["top_k"]) == 2


def test_predict_ner_entities(ner_client):
    r = ner_client.post("/v1/predict", json={"texts": [NER_TEXT, "nothing here", ""]})
    assert r.status_code == 200
    first, second, empty = r.json()["results"]
    ents = {(e["text"], e["type"]) for e in first["entities"]}
    assert ents == {("Maria Lopez", "PER"), ("Paris", "LOC")}
    for e in first["entities"]:
        assert NER_TEXT[e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1
    assert len(first["tags"]) == len(first["tokens"]) and empty["entities"] == [] and second["tokens"]


def test_explain_endpoint(ner_client, clf_client):
    r = ner_client.post("/v1/explain", json={"text": NER_TEXT, "method": "gxi", "entity": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    (exp,) = body["explanations"]
    assert exp["target"]["label"] == "LOC" and len(exp["scores"]) == len(exp["words"])
    assert "trustfit-explanation" in body["html"]
    r = clf_client.post("/v1/explain", json={"text": "<b>superb</b> day", "target": "negative"})
    assert r.status_code == 200 and "<b>" not in r.json()["html"] and r.json()["explanations"][0]["target"]["label"] == "negative"


@pytest.mark.parametrize("body, status, needle", [
    ({"text": NER_TEXT, "entity": 9}, 422, "--entity 9 is past the entities found"),
    ({"text": NER_TEXT, "target": "PER"}, 422, "use --entity N"),
    ({"text": NER_TEXT, "method": "anchors"}, 422, "method"),
    ({"text": NER_TEXT, "method": "lime", "samples": 5000}, 422, "at most 2000"),
    ({"text": NER_TEXT, "method": "ig", "samples": 100}, 422, "at most 64 steps"),
    ({"text": "a " * 201}, 422, "at most 200 words"),
    ({"text": ""}, 422, "text"),
    ({"text": "!!!"}, 200, None),
])
def test_explain_errors(ner_client, body, status, needle):
    r = ner_client.post("/v1/explain", json=body)
    assert r.status_code == status, r.text
    if needle:
        assert needle in json.dumps(r.json())


def test_limits_name_themselves(clf_client):
    r = clf_client.post("/v1/predict", json={"texts": ["a"] * 5})
    assert r.status_code == 422 and "at most 4 texts per request (server limit --max-texts)" in r.text
    r = clf_client.post("/v1/predict", json={"texts": ["a" * 201]})
    assert r.status_code == 422 and "at most 200 characters per text" in r.text
    r = clf_client.post("/v1/predict", content=json.dumps({"texts": ["a" * 150] * 3 + ["x" * 4000]}),
                        headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than 4000 bytes" in r.text
    assert clf_client.post("/v1/predict", json={"texts": []}).status_code == 422
    assert clf_client.post("/v1/predict", json={"texts": ["a"], "extra": 1}).status_code == 422
    assert clf_client.post("/v1/predict", content=b"not json", headers={"content-type": "application/json"}).status_code == 422


def test_api_key(keyword_classifier):
    app = create_app(ServeSettings(model=str(keyword_classifier), api_key=KEY))
    with TestClient(app) as c:
        assert c.post("/v1/predict", json={"texts": ["a"]}).status_code == 401
        assert c.post("/v1/predict", json={"texts": ["a"]}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/predict", json={"texts": ["a"]}, headers={"X-API-Key": KEY}).status_code == 200
        assert c.get("/metrics").status_code == 401 and c.get("/v1/model").status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200


def test_queue_full_answers_503_with_retry_after(keyword_classifier):
    with TestClient(create_app(ServeSettings(model=str(keyword_classifier), max_queue=2))) as c:
        r = c.post("/v1/predict", json={"texts": ["a", "b", "c"]})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "server busy" in r.text
        assert c.post("/v1/predict", json={"texts": ["a", "b"]}).status_code == 200


def test_model_health_metrics_page(clf_client):
    info = clf_client.get("/v1/model").json()
    assert info["task"] == "classify" and info["labels"] == ["negative", "positive"]
    assert info["limits"]["max_texts"] == 4 and "words_per_second" in info["training"] and "dev_metrics" in info
    assert clf_client.get("/healthz").json() == {"status": "ok"} and clf_client.get("/readyz").json() == {"ready": True}
    clf_client.post("/v1/predict", json={"texts": ["a superb day"]})
    m = clf_client.get("/metrics").text
    assert 'trustfit_requests_total{endpoint="/v1/predict",status="200"}' in m
    assert "trustfit_batch_texts_count" in m and "trustfit_request_seconds_bucket" in m and "trustfit_queue_texts" in m
    page = clf_client.get("/")
    assert "Content-Security-Policy" in page.headers and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script src=\"/static/app.js\">" in page.text and clf_client.get("/static/app.js").status_code == 200
    schema = clf_client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])


def test_settings_refuse_unsafe_or_bad_values(keyword_classifier, tmp_path):
    r = CliRunner().invoke(cli_app, ["serve", "--model", str(keyword_classifier), "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "give --api-key-file" in r.output
    (tmp_path / "short").write_text("abc\n")
    r = CliRunner().invoke(cli_app, ["serve", "--model", str(keyword_classifier), "--api-key-file", str(tmp_path / "short")])
    assert r.exit_code == 2 and "at least 16 characters" in r.output
    r = CliRunner().invoke(cli_app, ["serve", "--model", str(keyword_classifier), "--max-batch", "0", "--quantize", "int4"])
    assert r.exit_code == 2 and "--max-batch must be at least 1" in r.output and "--quantize 'int4'" in r.output
    r = CliRunner().invoke(cli_app, ["serve", "--model", str(keyword_classifier), "--runtime", "onnx", "--quantize", "int8"])
    assert r.exit_code == 2 and "do not combine" in r.output
    r = CliRunner().invoke(cli_app, ["serve", "--model", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such model folder" in r.output


def test_int8_quantized_server_agrees(ner_model):
    with TestClient(create_app(ServeSettings(model=str(ner_model), quantize="int8"))) as c:
        res = c.post("/v1/predict", json={"texts": [NER_TEXT]}).json()["results"][0]
        assert {(e["text"], e["type"]) for e in res["entities"]} == {("Maria Lopez", "PER"), ("Paris", "LOC")}
        assert c.get("/v1/model").json()["quantize"] == "int8"
        assert c.post("/v1/explain", json={"text": NER_TEXT, "method": "gxi"}).status_code == 200


def test_schemathesis_finds_no_server_errors(keyword_classifier):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    app = create_app(ServeSettings(model=str(keyword_classifier), max_texts=8, max_chars=300,
                                   explain_max_words=40, explain_max_samples=200))
    with TestClient(app):  # runs the lifespan: model loaded, batcher started
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures = []
        for op in schema.get_all_operations():
            operation = op.ok()

            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy())
            def check(case):
                resp = case.call()
                if resp.status_code >= 500:
                    failures.append((case.method, case.path, resp.status_code, resp.text[:200]))

            check()
        assert not failures, failures


# ------------------------------------------------------------------ a real process on loopback
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "trustfit", "serve", "--model", str(model), "--port", str(port),
                             "--log-level", "warning", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not become ready in 60 s")


@pytest.fixture(scope="module")
def live_ner(ner_model):
    proc, url = _start(ner_model, "--max-wait-ms", "20")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_micro_batched_answers_equal_one_by_one(live_ner):
    texts = [f"the report by {a} {b} was read in {c} today ." for a, b, c in
             zip(["Maria", "John", "Ahmed", "Chen"] * 8, ["Lopez", "Smith", "Haddad", "Wei"] * 8,
                 ["Paris", "Lagos", "Berlin", "Lima", "Osaka", "Cairo", "Paris", "Lima"] * 4)]
    texts = [t + " x" * (i % 5) for i, t in enumerate(texts)]  # different lengths in one batch
    with httpx.Client(timeout=30) as c:
        alone = [c.post(live_ner + "/v1/predict", json={"texts": [t]}).json()["results"][0] for t in texts]
        before = _batch_count(c.get(live_ner + "/metrics").text)

    def one(t):
        with httpx.Client(timeout=30) as c:
            return c.post(live_ner + "/v1/predict", json={"texts": [t]}).json()["results"][0]

    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(one, texts))
    with httpx.Client(timeout=30) as c:
        after = _batch_count(c.get(live_ner + "/metrics").text)
    for a, b in zip(alone, together):
        assert a["tags"] == b["tags"] and a["tokens"] == b["tokens"]
        assert [e["score"] for e in a["entities"]] == pytest.approx([e["score"] for e in b["entities"]], abs=2e-3)
    assert after - before < len(texts)  # some requests really shared a batch


def _batch_count(metrics: str) -> float:
    return float(next(l.split()[-1] for l in metrics.splitlines() if l.startswith("trustfit_batch_texts_count")))


def _queue_depth(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return float(next(l.split()[-1] for l in text.splitlines() if l.startswith("trustfit_queue_texts ")))


def test_sigterm_finishes_in_flight_requests(ner_model):
    proc, url = _start(ner_model, "--max-wait-ms", "3000")

    def one(i):
        with httpx.Client(timeout=30) as c:
            return c.post(url + "/v1/predict", json={"texts": [f"{NER_TEXT} {i}"]}).status_code

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, i) for i in range(8)]
        deadline = time.time() + 10
        while _queue_depth(url) < 8 and time.time() < deadline:  # all 8 wait in the 3 s batching window
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        codes = [f.result() for f in futures]
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    assert codes == [200] * 8


def test_two_worker_processes(keyword_classifier):
    proc, url = _start(keyword_classifier, "--workers", "2")
    try:
        with httpx.Client(timeout=30) as c:
            labels = {c.post(url + "/v1/predict", json={"texts": ["a superb day"]}).json()["results"][0]["label"]
                      for _ in range(6)}
        assert labels == {"positive"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is installed by scripts/setup.sh")
def test_web_page_in_headless_chromium(live_ner, tmp_path):
    from playwright.sync_api import sync_playwright

    errors, dialogs = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone's width
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(live_ner + "/")
        page.locator("#model", has_text="named-entity").wait_for()  # (no wait_for_function: the CSP forbids eval)
        page.fill("#text", NER_TEXT)
        page.click("#predict")
        page.wait_for_selector("mark.ent")
        marks = page.locator("mark.ent")
        assert marks.count() == 2 and "Maria Lopez" in marks.first.inner_text() and "PER" in marks.first.inner_text()
        page.select_option("#method", "gxi")
        page.click("#explain")
        page.wait_for_selector(".trustfit-explanation span[title]")
        coloured = page.locator(".trustfit-explanation span[title]")
        assert coloured.count() == len(NER_TEXT.split())
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        # an XSS attempt is shown as text, never run
        xss = "<img src=x onerror=alert(1)> Maria Lopez"
        page.fill("#text", xss)
        page.click("#predict")
        page.locator("#result", has_text="onerror").wait_for()
        assert page.locator("#result img").count() == 0
        shown = page.locator("#result").inner_text()  # shown as text (an entity mark may split it)
        assert "<img" in shown and "src=x onerror=alert(1)>" in shown
        browser.close()
    assert not dialogs and not errors, (dialogs, errors)
    assert (tmp_path / "page.png").stat().st_size > 10000


@pytest.mark.parametrize("which", ["ner", "classify"])
def test_onnx_runtime_server_agrees_with_torch(which, ner_model, keyword_classifier):
    model = ner_model if which == "ner" else keyword_classifier
    texts = [NER_TEXT, "an awful report on Chen Wei in Lima", "superb"]
    with TestClient(create_app(ServeSettings(model=str(model)))) as c:
        ref = c.post("/v1/predict", json={"texts": texts}).json()["results"]
    with TestClient(create_app(ServeSettings(model=str(model), runtime="onnx"))) as c:
        got = c.post("/v1/predict", json={"texts": texts}).json()["results"]
        assert c.get("/v1/model").json()["runtime"] == "onnx"
    for a, b in zip(ref, got):
        if which == "ner":
            assert a["tags"] == b["tags"]
        else:
            assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-3)
