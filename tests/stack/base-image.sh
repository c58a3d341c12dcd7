#!/usr/bin/env bash
# The base image of the compose stack test, made with no registry: a minimal Debian bookworm from this
# machine's own Debian mirror (debootstrap), with Debian's Python 3.11 in a venv on PATH and PostgreSQL 15,
# carrying this machine's CA certificates (outgoing HTTPS may go through a proxy with its own CA) and its
# local wheels (PIP_FIND_LINKS, e.g. a CPU build of PyTorch), imported into the engine at DOCKER_HOST as TAG.
#
#   base-image.sh WORKDIR TAG        (as root; about a minute)
set -euo pipefail
work=$1
tag=$2
root=$work/rootfs
# The mirror this machine's apt uses (deb822 or one-line sources), else Debian's own.
mirror=$(
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'; } |
        grep -v -e security -e nodesource | head -n 1
) || true
mirror=${mirror:-http://deb.debian.org/debian}
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,postgresql-15 \
    bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
chroot "$root" python3 -m venv /opt/venv
mkdir -p "$root/opt/wheels"
for links in ${PIP_FIND_LINKS:-}; do
    if [ -d "$links" ]; then
        find "$links" -maxdepth 1 -name '*.whl' -exec cp {} "$root/opt/wheels/" \;
    fi
done
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_FIND_LINKS=/opt/wheels PIP_DISABLE_PIP_VERSION_CHECK=1' \
    - "$tag" > /dev/null
