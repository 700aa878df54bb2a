# syntax=docker/dockerfile:1
# The Tripwire app image: `tripwire worker` by default, `tripwire train ...` for the
# one-shot trainer. CPU-only PyTorch, non-root user, no compiler in the final image.
#
#   docker build -t tripwire:0.1.0 .
#
# Tests in tests/deploy/test_dockerfile.py parse this file (base image, user, torch
# source, entrypoint, exposed port against the worker's default metrics port).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

# CPU wheel from PyTorch's own index first: an unpinned `pip install torch` from PyPI
# pulls the CUDA build (GBs of libraries a CPU host never uses). pyproject's
# `torch>=2.2,<3` is then already satisfied and `pip install .` adds nothing to it.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY training ./training
COPY stream ./stream
COPY tripwire ./tripwire
RUN pip install . && pip check


FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

# Fixed numeric ids so volume ownership and Kubernetes' runAsNonRoot are predictable.
# /registry is created here, owned by the app user, so a fresh named volume mounted on
# it inherits that ownership and the trainer can publish into it.
RUN groupadd --system --gid 10001 tripwire \
    && useradd --system --uid 10001 --gid tripwire --create-home --home-dir /home/tripwire tripwire \
    && mkdir -p /registry \
    && chown tripwire:tripwire /registry

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /home/tripwire

# The worker's Prometheus endpoint (TRIPWIRE_METRICS_PORT).
EXPOSE 9464

# No curl in slim images: probe /metrics with the interpreter that is already here.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('TRIPWIRE_METRICS_PORT', '9464'), timeout=4)"]

ENTRYPOINT ["tripwire"]
CMD ["worker"]
