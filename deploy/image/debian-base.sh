#!/bin/sh
# Build a base image equivalent to python:3.11-slim-bookworm from Debian's own packages, for
# machines that reach Debian's archive but not a container registry (this project's build
# machines). Needs root, mmdebstrap and podman (all Debian packages):
#
#   apt-get install -y mmdebstrap podman
#   deploy/image/debian-base.sh                      # -> localhost/plinth-base:3.11-bookworm
#   make image BASE_IMAGE=localhost/plinth-base:3.11-bookworm
#
# Debian bookworm's python3 is 3.11. Documentation, man pages and locales are left out, as
# the slim image does.
set -eu
tag="${1:-localhost/plinth-base:3.11-bookworm}"
suite="${SUITE:-bookworm}"
mirror="${MIRROR:-http://deb.debian.org/debian}"
tarball="$(mktemp --suffix=.tar)"
trap 'rm -f "$tarball"' EXIT
mmdebstrap --variant=minbase --mode=root \
    --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$suite" "$tarball" "$mirror"
podman import --change 'CMD ["python3"]' "$tarball" "$tag"
echo "$tag"
