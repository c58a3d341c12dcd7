# One image for the Ray head, the Ray workers and the MLflow server.
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
WORKDIR /opt/stacktune
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY search search
COPY models models
COPY datasets datasets
RUN pip install --no-cache-dir .
