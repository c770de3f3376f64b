"""The FastAPI application: `create_app(settings, store)` wires the routers to one Redis job store.

The API never imports torch: it validates requests, stores inputs and reads job state, while workers
(`bootpig worker`) do the generation. All state lives in Redis, so API processes can restart or be
replicated without losing jobs. Routes live in `app.routers`; what they share (settings, store, caller)
reaches them as FastAPI dependencies (`app.deps`, `app.auth`).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import redis.asyncio
from fastapi import FastAPI

from app.docs import install_docs
from app.errors import install_error_handlers
from app.examples import scan_examples
from app.metrics import build_registry
from app.notify import start_dispatcher
from app.routers.events import router as events_router
from app.routers.examples import router as examples_router
from app.routers.health import router as health_router
from app.routers.jobs import router as jobs_router
from app.routers.page import STATIC
from app.routers.page import router as page_router
from app.routers.subjects import router as subjects_router
from app.security import SecurityHeaders, content_security_policy
from app.supervisor import stop_with_supervisor
from app.uploads import UploadSlots
from bootpig.settings import Settings, get_settings
from jobs.store import JobStore, connect
from jobs.subjects import SubjectStore
from jobs.sweeper import Sweeper
from jobs.views import JobViews


def create_app(settings: Settings | None = None, store: JobStore | None = None) -> FastAPI:
    """The API on `store` (default: a store on `settings.redis_url`), with its background reaper."""
    settings = settings or get_settings()
    store = store or JobStore(connect(settings, settings.redis_request_timeout, retries=1), settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop_with_supervisor()
        reaper = Sweeper(store, settings.heartbeat_interval, "bootpig-reaper")
        reaper.start()
        webhooks = start_dispatcher(store)
        yield
        reaper.stop()
        webhooks.stop()
        await app.state.async_redis.aclose()

    app = FastAPI(
        title="BootPIG",
        description="Zero-shot personalized image generation: upload photos of an object, describe a scene, "
        "get images of that object in it. Jobs run on GPU workers behind a Redis queue.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by app.docs from the installed package, not a CDN
        redoc_url=None,
    )
    app.state.settings, app.state.store = settings, store
    app.state.subjects = SubjectStore(store.redis, settings)
    app.state.async_redis = redis.asyncio.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    app.state.registry, app.state.submissions = build_registry(store)
    app.state.upload_slots = UploadSlots(settings.max_concurrent_uploads, settings.upload_queue_timeout)
    app.state.views = JobViews(store)
    app.state.examples = scan_examples(settings.model_choice().local_folder())
    install_error_handlers(app)
    pages = [*install_docs(app), (STATIC / "index.html").read_text()]
    app.add_middleware(SecurityHeaders, csp=content_security_policy(pages))
    for router in (page_router, jobs_router, events_router, subjects_router, examples_router, health_router):
        app.include_router(router)
    return app
