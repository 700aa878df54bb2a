# syntax=docker/dockerfile:1
# Two images from one file, both CPU-only PyTorch, non-root, no compiler inside:
#
#   docker build -t tripwire:0.1.0 .                                  # the worker (default)
#   docker build --target trainer -t tripwire-trainer:0.1.0 .          # the trainer
#
# The worker image leaves out what only training needs (PyOD and
# matplotlib): it cannot serve `pyod:<Name>` models (docs/deploy.md). Dependencies
# come from hashed lock files (requirements/*.lock, pip --require-hashes) installed
# before the sources are copied, so a code edit reinstalls nothing but the app.
#
# Tests in tests/deploy/test_dockerfile.py parse this file (base image digest, stage
# order, user, lock files, entrypoint, health check, exposed port).

# python:3.11-slim-bookworm, pinned by the digest of its multi-platform index as
# docker-library/repo-info records it (repos/python/remote/3.11-slim-bookworm.md);
# see docs/deploy.md for how to move it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch is in the lock as the CPU build (2.13.0+cpu), found on PyTorch's CPU index;
# PyPI's torch is the CUDA build (GBs of libraries a CPU host never uses).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements/worker.lock /tmp/worker.lock
RUN pip install --require-hashes --no-deps --extra-index-url "${TORCH_INDEX_URL}" \
        -r /tmp/worker.lock

FROM deps AS deps-trainer
COPY requirements/trainer.lock /tmp/trainer.lock
RUN pip install --require-hashes --no-deps --extra-index-url "${TORCH_INDEX_URL}" \
        -r /tmp/trainer.lock

# The sources last: only this layer and the ones after it rebuild on a code edit.
FROM deps AS build-worker
WORKDIR /src
COPY pyproject.toml README.md ./
COPY training ./training
COPY stream ./stream
COPY tripwire ./tripwire
RUN pip install --no-deps . && pip check

FROM deps-trainer AS build-trainer
WORKDIR /src
COPY pyproject.toml README.md ./
COPY training ./training
COPY stream ./stream
COPY tripwire ./tripwire
RUN pip install --no-deps . && pip check


FROM ${PYTHON_IMAGE} AS runtime
# The commit, for tripwire_build_info: docker build --build-arg REVISION=$(git rev-parse HEAD)
ARG REVISION=unknown
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    TRIPWIRE_REVISION=${REVISION}
# Fixed numeric ids so volume ownership and Kubernetes' runAsNonRoot are predictable.
# /registry is created here, owned by the app user, so a fresh named volume mounted on
# it inherits that ownership and the trainer can publish into it.
RUN groupadd --system --gid 10001 tripwire \
    && useradd --system --uid 10001 --gid tripwire --create-home --home-dir /home/tripwire tripwire \
    && mkdir -p /registry \
    && chown tripwire:tripwire /registry
WORKDIR /home/tripwire
ENTRYPOINT ["tripwire"]


FROM runtime AS trainer
COPY --from=build-trainer /opt/venv /opt/venv
USER 10001:10001
CMD ["train", "--help"]


# The last stage is what a plain `docker build` makes: the worker.
FROM runtime AS worker
COPY --from=build-worker /opt/venv /opt/venv
USER 10001:10001
# The worker's Prometheus and health endpoints (TRIPWIRE_METRICS_PORT).
EXPOSE 9464
# Liveness: /healthz fails when the event loop has not ticked for a while (a frozen
# worker), not only when the process is gone. No curl in slim images: the
# interpreter that is already here fetches it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TRIPWIRE_METRICS_PORT', '9464'), timeout=4)"]
CMD ["worker"]
