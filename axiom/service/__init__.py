"""The backend service behind `axiom serve`: one process, two uvicorn servers over one shared RAGPipeline.

- sidecar (default port 5000, no auth): GET /health, GET /metrics (Prometheus text format)
- API (default port 8000): POST /query, POST /ingest (API key when AXIOM_API_KEYS is set), GET /health, /docs

Modules: `state` (the shared pipeline, cache, health checker), `app` (the two FastAPI apps), `auth` (API
keys), `cache` (LRU + TTL query cache), `middleware` (request id, body limit, access log, request metrics),
`server` (the runner: both servers, signals, graceful shutdown).
"""
