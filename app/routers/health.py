"""Probes and metrics: /healthz (the process), /readyz (Redis and a loaded worker), /metrics.

/healthz is answered on the event loop itself, touching neither Redis nor the thread pool, so a hung
Redis or a pool full of waiting requests cannot make a live API look dead. /readyz tells anyone whether
the service can take jobs; which workers, hosts, models and jobs are behind that is operator detail,
shown only with the admin key (`app.admin`).
"""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.admin import is_admin
from app.deps import RegistryDep, SettingsDep, StoreDep
from model.config import DEMO_WARNING

# What /readyz shows of each worker's heartbeat to operators.
WORKER_FIELDS = ("name", "host", "model", "checkpoint", "demo", "device", "job")

router = APIRouter()


@router.get("/healthz", summary="The API process is alive")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis answers and a worker with its model loaded is alive",
    description="Public: readiness, worker counts, demo flag, the served models' names, kinds and native "
    "image sizes (`serving`), and queue depth. With `X-Admin-Key`: each live worker's name, host, model, "
    "checkpoint, device and current job.",
    responses={401: {"description": "A wrong X-Admin-Key"}},
)
def readyz(request: Request, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    detail = is_admin(request, settings)
    try:
        store.redis.ping()
        workers = store.live_workers()
    except redis.exceptions.RedisError:
        return JSONResponse({"ready": False, "redis": False, "live_workers": 0}, status_code=503)
    loaded = [w for w in workers if w.get("model_loaded")]
    body = {
        "ready": bool(loaded),
        "redis": True,
        "live_workers": len(workers),
        "loaded_workers": len(loaded),
        "demo": any(w.get("demo") for w in loaded),
        "serving": served_models(loaded),
        "queue_depth": store.queue_length(),
    }
    if detail:
        body["workers"] = [{key: w.get(key) for key in WORKER_FIELDS} for w in workers]
        body["models"] = sorted({w.get("model") or "" for w in loaded})
    if body["demo"]:
        body["warning"] = DEMO_WARNING
    if not loaded:
        body["reason"] = "no live worker with a loaded model"
    return JSONResponse(body, status_code=200 if loaded else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(registry: RegistryDep) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def served_models(workers: list[dict]) -> list[dict]:
    """The distinct models of the loaded workers, by public name only (never a worker's model path)."""
    models = {
        (w["model_name"], w.get("model_kind"), w.get("native_size")) for w in workers if w.get("model_name")
    }
    return [{"name": name, "kind": kind, "native_size": size} for name, kind, size in sorted(models, key=str)]
