# One image for the Ray head, the Ray workers and the MLflow server of docker-compose.yml.
# CPU PyTorch by default; the compose file's GPU worker builds it with a CUDA index:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t stacktune:gpu .
# The base image is a build argument (a pinned Debian release by default); another Python 3.11+ image
# with pip, sh and grep works too: docker build --build-arg BASE_IMAGE=... .
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/stacktune
# PyTorch first, from the index chosen above, so resolving the project never pulls another build.
RUN pip install --index-url "$TORCH_INDEX" "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY stacktune stacktune
COPY search search
COPY models models
COPY datasets datasets
COPY examples examples
COPY docker docker
# Ray at the one version every node and manifest uses (constraints/cluster.txt).
COPY constraints/cluster.txt constraints/cluster.txt
RUN pip install -c constraints/cluster.txt ".[cluster]"
# Nothing runs as root; the volumes compose mounts are created owned by this user.
RUN useradd --create-home --uid 1000 stacktune \
    && mkdir -p /shared /mlflow-auth && chown stacktune /shared /mlflow-auth
USER stacktune
WORKDIR /home/stacktune
