#!/usr/bin/env bash
# Make a Debian bookworm base image without a registry: debootstrap a minimal root file system
# and `docker import` it under the name the Dockerfile builds on by default. Needs root (or
# sudo), debootstrap and a reachable Debian mirror. Usage: docker/make-base-image.sh [NAME]
set -euo pipefail
name=${1:-debian:bookworm-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$name" >/dev/null 2>&1; then
  echo "base image $name already exists"; exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import - "$name" >/dev/null
echo "made base image $name ($(docker run --rm "$name" cat /etc/debian_version))"
