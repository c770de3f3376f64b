# syntax=docker/dockerfile:1
# bootpig GPU worker image: `bootpig worker` with the CUDA build of torch, one worker per GPU.
# Build from the repository root on a machine with internet access (the wheels are large):
#   docker build -f docker/worker.Dockerfile -t bootpig-worker .
# Build arguments:
#   CUDA_IMAGE       pinned CUDA runtime base; its CUDA version must match the torch build below and
#                    the host driver must support it (CUDA 13.0 needs an NVIDIA driver >= 580).
#   TORCH_INDEX_URL  PyTorch wheel index of the CUDA build of torch 2.14.1 (default: CUDA 13.0,
#                    https://download.pytorch.org/whl/cu130). Pair another index with its base image.
#   APP_UID          uid/gid of the unprivileged user (bind-mounted model folders must be writable by it).

ARG CUDA_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG APP_UID=10001

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Python from the distribution (3.12 on Ubuntu 24.04), and the shared libraries OpenCV (a carvekit
# dependency) loads. Versions come with the pinned base image; apt pins would break on every update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid "${APP_UID}" bootpig \
    && useradd --system --uid "${APP_UID}" --gid bootpig --create-home --home-dir /home/bootpig \
        --shell /usr/sbin/nologin bootpig \
    && install -d -o bootpig -g bootpig /srv/bootpig /models \
    && python3 -m venv "${VIRTUAL_ENV}"

# Dependencies first (the slow, rarely changing layers): only pyproject.toml and the pins are needed.
# setuptools is the build backend of the source install below (run without build isolation).
WORKDIR /opt/bootpig
COPY pyproject.toml docker/constraints.txt docker/split_requirements.py /tmp/build/
RUN python /tmp/build/split_requirements.py /tmp/build/pyproject.toml /tmp/build/torch.txt \
        /tmp/build/requirements.txt \
    && pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" --extra-index-url https://pypi.org/simple \
        -c /tmp/build/constraints.txt -r /tmp/build/torch.txt \
    && pip install --no-cache-dir -c /tmp/build/constraints.txt -r /tmp/build/requirements.txt setuptools \
    && rm -rf /tmp/build

# The source last: a code change rebuilds only this small layer (installed in place, see api.Dockerfile).
COPY pyproject.toml README.md ./
COPY bootpig ./bootpig
COPY model ./model
COPY app ./app
COPY jobs ./jobs
COPY worker ./worker
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && bootpig --help > /dev/null

# Container defaults (a .env passed by compose overrides them): run on the GPU (fail loudly without
# one rather than crawl on the CPU), weights, TRACER and the hub cache on the models volume.
ENV BOOTPIG_DEVICE=cuda \
    BOOTPIG_DEMO_MODEL_DIR=/srv/bootpig/demo-model \
    BOOTPIG_TRACER_WEIGHTS=/models/carvekit/tracer_b7.pth \
    HF_HOME=/models/huggingface

USER ${APP_UID}:${APP_UID}
WORKDIR /srv/bootpig

# No HTTP port to probe: a worker's liveness is its heartbeat in Redis (see /readyz and /metrics).
HEALTHCHECK NONE

ENTRYPOINT ["bootpig"]
CMD ["worker"]
