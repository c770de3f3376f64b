# syntax=docker/dockerfile:1
# bootpig API image: `bootpig serve` on port 8000 (also the CPU worker of the compose `cpu` profile).
# Slim Python with the CPU build of torch: the API never runs a model, but the package imports the
# model code, and the CPU worker reuses this image. Build from the repository root:
#   docker build -f docker/api.Dockerfile -t bootpig-api .
# Build arguments: PYTHON_IMAGE (pinned base), TORCH_INDEX_URL (PyTorch wheel index, default CPU),
# APP_UID (uid/gid of the unprivileged user; files on bind-mounted volumes must be writable by it).

ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG APP_UID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# An unprivileged user, and the folders it writes: its working dir and the models volume's mount point
# (a fresh named volume copies this folder's owner, so the hub cache stays writable).
RUN groupadd --system --gid "${APP_UID}" bootpig \
    && useradd --system --uid "${APP_UID}" --gid bootpig --create-home --home-dir /home/bootpig \
        --shell /usr/sbin/nologin bootpig \
    && install -d -o bootpig -g bootpig /srv/bootpig /models \
    && python -m venv "${VIRTUAL_ENV}"

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

# The source last: a code change rebuilds only this small layer. Installed in place (editable) so
# package data such as the web page's static files are served from the tree as in development.
COPY pyproject.toml README.md ./
COPY bootpig ./bootpig
COPY model ./model
COPY app ./app
COPY jobs ./jobs
COPY worker ./worker
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && bootpig --help > /dev/null

# Container defaults (a .env passed by compose overrides them): listen on all interfaces inside the
# container, weights and the hub cache on the models volume, the demo model in the writable work dir.
ENV BOOTPIG_HOST=0.0.0.0 \
    BOOTPIG_PORT=8000 \
    BOOTPIG_DEMO_MODEL_DIR=/srv/bootpig/demo-model \
    BOOTPIG_TRACER_WEIGHTS=/models/carvekit/tracer_b7.pth \
    HF_HOME=/models/huggingface

USER ${APP_UID}:${APP_UID}
WORKDIR /srv/bootpig
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["bootpig"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
