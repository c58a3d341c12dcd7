#!/usr/bin/env bash
# The Debian packages the tests drive: headless Chromium for the MLflow UI test (through playwright,
# which downloads no browser) and docker-compose, which validates docker-compose.yml without an engine.
# `system-deps.sh stack` adds what the compose stack test runs: Docker's engine (docker.io) and
# debootstrap, which builds its base image.
# Installed when missing if this runs as root with apt-get; otherwise one line says what to install.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/docker-compose ] || missing+=(docker-compose)
if [ "${1:-}" = stack ]; then
    [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
    [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get > /dev/null; then
    echo "installing ${missing[*]} for the tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
else
    echo "error: the tests need ${missing[*]}: run 'sudo apt-get install ${missing[*]}' (Debian or Ubuntu), then make test again" >&2
    exit 1
fi
