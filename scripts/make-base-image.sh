#!/usr/bin/env bash
# Make the stand-in for the CUDA base image on a machine with no registry:
#   debootstrap --variant=minbase bookworm DIR ; tar -C DIR -c . | docker import - local/base
# What nvidia/cuda:12.8.1-runtime-ubuntu24.04 gives the Dockerfile and what this gives instead:
#   - a glibc Linux userland with apt-get                -> Debian bookworm minbase
#   - CUDA runtime libraries                            -> none (torch's wheels carry their own;
#                                                          no GPU here anyway)
#   - NVIDIA_VISIBLE_DEVICES / NVIDIA_DRIVER_CAPABILITIES -> set the same, harmless without GPU
#   - Python 3.12 from apt (ubuntu 24.04)               -> bookworm has 3.11: builds on this base
#                                                          pass --build-arg PYTHON_VERSION=3.11
#   - the public CA roots                               -> ca-certificates, plus this machine's own
#                                                          extra CAs from /usr/local/share/ca-certificates
#                                                          (a TLS-intercepting egress proxy needs them;
#                                                          they stay in the test base, never in production)
# Idempotent: does nothing when the image exists (FORCE=1 rebuilds).
# Env: BASE_TAG (default local/base:bookworm), SUITE (bookworm), MIRROR (http://deb.debian.org/debian)
set -euo pipefail

DOCKER_BIN=${DOCKER_BIN:-/usr/bin/docker}
BASE_TAG=${BASE_TAG:-local/base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

say() { echo "make-base-image: $*" >&2; }

if [[ "${FORCE:-}" != 1 ]] && "$DOCKER_BIN" image inspect "$BASE_TAG" >/dev/null 2>&1; then
  say "$BASE_TAG already exists"
  exit 0
fi
command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install -y debootstrap"; exit 1; }
[[ $(id -u) -eq 0 ]] || { say "debootstrap needs root"; exit 1; }

work=$(mktemp -d /tmp/steadydancer-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
say "debootstrap --variant=minbase $SUITE (a few minutes)"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
# The machine's extra CAs (if any), so that package managers inside the build trust the proxy.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1 || say "update-ca-certificates failed in the chroot"
fi
# Same apt sources as a fresh bookworm image (plus updates and security).
cat >"$root/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SRC
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
tar -C "$root" -c . | "$DOCKER_BIN" import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV NVIDIA_VISIBLE_DEVICES=all' \
  -c 'ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility' \
  -c 'LABEL org.steadydancer.standin=debian-bookworm-minbase' \
  -c 'CMD ["/bin/bash"]' - "$BASE_TAG" >/dev/null
say "made $BASE_TAG ($("$DOCKER_BIN" image inspect -f '{{.Size}}' "$BASE_TAG") bytes)"
