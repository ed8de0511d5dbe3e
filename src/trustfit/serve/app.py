"""The HTTP API and web page (FastAPI).

Endpoints: POST /v1/predict, POST /v1/explain, GET /v1/model, GET /healthz, GET /readyz,
GET /metrics (Prometheus), GET / (the page), and the OpenAPI schema at /openapi.json.
Predictions go through the micro-batcher (one inference thread); explanations run in a thread
pool under their own concurrency limit and budget. Every limit answers 413, 422 or 503 with a
message that names it."""

# no `from __future__ import annotations`: pydantic reads the request models' limits, which are
# closure values of create_app, from real annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any, Literal, Optional

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from trustfit.serve.batcher import MicroBatcher, QueueFull
from trustfit.serve.metrics import ServerMetrics
from trustfit.serve.settings import ServeSettings

IG_MAX_STEPS = 64
EXPLAIN_WAIT_S = 5.0  # how long an explanation may wait for a free slot before 503
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 (by Content-Length up front,
    or while streaming a body without one)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._reject(send)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return msg

        async def tracking_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send):
        body = (f'{{"detail": "request body larger than {self.limit} bytes (server limit --max-body-bytes)"}}').encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(settings: ServeSettings, engine: Any = None) -> FastAPI:
    """The app for one model folder; `engine` may be given (tests), else it loads at start-up."""
    settings.validate()
    metrics = ServerMetrics()
    state: dict[str, Any] = {"engine": engine, "batcher": None, "ready": False}
    explain_slots = asyncio.Semaphore(settings.explain_concurrency)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from trustfit.serve.engine import Engine

        eng = state["engine"] or await run_in_threadpool(Engine, settings)

        def on_batch(n: int, seconds: float) -> None:
            metrics.batch_size.observe(n)
            metrics.batch_seconds.observe(seconds)

        batcher = MicroBatcher(eng.predict, eng.count_tokens, settings.max_wait_ms, settings.max_batch,
                               settings.max_batch_tokens, settings.max_queue, on_batch=on_batch)
        batcher.start()
        state.update(engine=eng, batcher=batcher, ready=True)
        yield
        state["ready"] = False
        await run_in_threadpool(batcher.stop)  # answers what was accepted before shutting down

    app = FastAPI(title="trustfit", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Predict with and explain a trustfit model (NER or text classification).")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization"])

    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                                  description="required when the server was started with --api-key-file")

    def require_key(key: Optional[str] = Depends(api_key_header)) -> None:
        if settings.api_key is None:
            return
        if key is None or not hmac.compare_digest(key.encode("utf-8"), settings.api_key.encode("utf-8")):
            raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header")

    def engine_or_503():
        if not state["ready"]:
            raise HTTPException(503, "the model is not loaded yet", headers={"Retry-After": "2"})
        return state["engine"]

    Text = Annotated[str, StringConstraints(max_length=settings.max_chars)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: Annotated[list[Text], Field(min_length=1, max_length=settings.max_texts,
                                           description="texts to predict, answered in order")]

    class PredictResponse(BaseModel):
        results: list[dict[str, Any]]

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: Annotated[str, StringConstraints(min_length=1, max_length=settings.max_chars)]
        method: Literal["ig", "gxi", "shap", "lime", "random"] = "ig"
        entity: Annotated[Optional[int], Field(ge=0, description="NER: the N-th entity found (0 = first)")] = None
        target: Optional[str] = Field(None, description="classification: the class to explain (default: predicted)")
        samples: Annotated[Optional[int], Field(ge=1, le=settings.explain_max_samples,
                                                description="ig steps, shap evaluations or lime samples")] = None
        seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0

    class ExplainResponse(BaseModel):
        task: str
        method: str
        explanations: list[dict[str, Any]]
        html: str
        note: Optional[str] = None

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": [_message(e, settings) for e in exc.errors()]})

    @app.middleware("http")
    async def observe(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "other")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
        if endpoint == "/":
            response.headers["Content-Security-Policy"] = CSP
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.post("/v1/predict", response_model=PredictResponse, dependencies=[Depends(require_key)],
              responses={413: {"description": "body too large"}, 503: {"description": "queue full or not ready"}})
    async def predict(req: PredictRequest) -> dict:
        engine_or_503()
        try:
            results = await state["batcher"].submit(req.texts)
        except QueueFull as e:
            raise HTTPException(503, f"server busy: {e}; retry later", headers={"Retry-After": "1"}) from None
        return {"results": results}

    @app.post("/v1/explain", response_model=ExplainResponse, dependencies=[Depends(require_key)])
    async def explain(req: ExplainRequest) -> dict:
        eng = engine_or_503()
        if req.method not in settings.explain_methods:
            raise HTTPException(422, f"method {req.method!r} is not enabled on this server: use "
                                     f"{', '.join(settings.explain_methods)}")
        if req.method == "ig" and req.samples is not None and req.samples > IG_MAX_STEPS:
            raise HTTPException(422, f"ig takes at most {IG_MAX_STEPS} steps on this server")
        try:
            await asyncio.wait_for(explain_slots.acquire(), timeout=EXPLAIN_WAIT_S)
        except asyncio.TimeoutError:
            raise HTTPException(503, f"{settings.explain_concurrency} explanations are already running; retry later",
                                headers={"Retry-After": "5"}) from None
        metrics.explain_running.inc()
        try:
            return await run_in_threadpool(_explain, eng, req, settings)
        finally:
            metrics.explain_running.dec()
            explain_slots.release()

    @app.get("/v1/model", dependencies=[Depends(require_key)])
    async def model_info() -> dict:
        eng = engine_or_503()
        limits = {k: getattr(settings, k) for k in ("max_texts", "max_chars", "max_body_bytes", "max_batch",
                                                     "max_wait_ms", "max_queue", "explain_max_words",
                                                     "explain_max_samples", "explain_methods")}
        return {**eng.model_info(), "limits": limits, "auth": settings.api_key is not None}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        if not state["ready"]:
            return JSONResponse(status_code=503, content={"ready": False}, headers={"Retry-After": "2"})
        return {"ready": True}

    @app.get("/metrics", dependencies=[Depends(require_key)], response_class=Response)
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if state["batcher"] is not None:
            metrics.queue_depth.set(state["batcher"].depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/app.js", include_in_schema=False)
    async def page_script() -> Response:
        return Response(_static("app.js"), media_type="text/javascript")

    return app


def _static(name: str) -> str:
    return resources.files("trustfit.serve").joinpath("static", name).read_text(encoding="utf-8")


def _message(err: dict, settings: ServeSettings) -> str:
    """A validation error as one sentence that names the limit broken."""
    loc = ".".join(str(x) for x in err.get("loc", ())[1:]) or "body"
    typ = err.get("type", "")
    if loc == "texts" and typ == "too_long":
        return f"texts: at most {settings.max_texts} texts per request (server limit --max-texts)"
    if typ == "string_too_long":
        return f"{loc}: at most {settings.max_chars} characters per text (server limit --max-chars)"
    if loc == "samples" and typ == "less_than_equal":
        return f"samples: at most {settings.explain_max_samples} on this server (--explain-max-samples)"
    return f"{loc}: {err.get('msg', 'invalid')}"


def _explain(eng, req, settings: ServeSettings) -> dict:
    from trustfit.explain import ExplainError, Text, make_explainer, select_targets
    from trustfit.explain.render import attribution_html

    text = Text.from_string(req.text)
    if not len(text):
        raise HTTPException(422, "text: no words to explain")
    if len(text) > settings.explain_max_words:
        raise HTTPException(422, f"text: {len(text)} words; explanations take at most {settings.explain_max_words} "
                                 "words on this server (--explain-max-words)")
    view = eng.explainable
    try:
        targets = select_targets(view, text, req.entity, req.target)
        explainer = make_explainer(req.method, view, samples=req.samples, seed=req.seed)
        atts = [explainer.explain(text, t) for t in targets]
    except ExplainError as e:
        raise HTTPException(422, str(e)) from None
    note = None if atts else "no entities found: nothing to explain"
    return {"task": view.task, "method": req.method, "explanations": [a.to_json() for a in atts],
            "html": "".join(attribution_html(a) for a in atts), "note": note}


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (`--workers N`): settings come from TRUSTFIT_SERVE_SETTINGS."""
    return create_app(ServeSettings.from_env())
