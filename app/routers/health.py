"""Probes and metrics: /healthz (the process), /readyz (Redis and a loaded worker), /metrics."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import RegistryDep, StoreDep
from model.config import DEMO_WARNING

# What /readyz shows of each worker's heartbeat.
WORKER_FIELDS = ("name", "host", "model", "checkpoint", "demo", "device", "job")

router = APIRouter()


@router.get("/healthz", summary="The API process is alive")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers and a worker with its model loaded is alive")
def readyz(store: StoreDep) -> JSONResponse:
    try:
        store.redis.ping()
        workers = store.live_workers()
    except redis.exceptions.RedisError:
        return JSONResponse({"ready": False, "redis": False, "workers": []}, status_code=503)
    loaded = [w for w in workers if w.get("model_loaded")]
    body = {
        "ready": bool(loaded),
        "redis": True,
        "workers": [{key: w.get(key) for key in WORKER_FIELDS} for w in workers],
        "models": sorted({w.get("model") or "" for w in loaded}),
        "demo": any(w.get("demo") for w in loaded),
        "queue_depth": store.queue_length(),
    }
    if body["demo"]:
        body["warning"] = DEMO_WARNING
    if not loaded:
        body["reason"] = "no live worker with a loaded model"
    return JSONResponse(body, status_code=200 if loaded else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(registry: RegistryDep) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
