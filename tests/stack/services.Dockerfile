# The stack test's stand-ins for the two images of docker-compose.yml that come from a registry, on the
# test's own base image: PostgreSQL (Debian's, behind postgres-entrypoint.sh) and an S3 API in place of
# MinIO (moto's server, which speaks the S3 protocol MLflow's artifact proxy uses).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN pip install --no-cache-dir "moto[server]>=5.0,<6"
# Debian's package made a cluster of its own when it was installed; the entrypoint makes the one that runs.
# PGPORT: Debian's psql and pg_isready wrappers then ask the server on the usual port (compose's healthcheck).
RUN pg_dropcluster 15 main
ENV PGPORT=5432
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
