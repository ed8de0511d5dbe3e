"""Serving: a FastAPI app (predict, explain, model info, health, Prometheus metrics, a web page)
over a trained folder, with dynamic micro-batching on one inference thread, API keys, request
limits and back-pressure. `trustfit serve` runs it under uvicorn."""
