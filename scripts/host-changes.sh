#!/usr/bin/env bash
# Says, before `make test` starts, what it is about to install or change on this host (and what
# it will leave as it is), with the time and disk it takes the first time. Only prints.
set -uo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
{ command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; } || missing+=(ffmpeg)
docker_pkgs=()
[[ -x ${DOCKER_BIN:-/usr/bin/docker} ]] || docker_pkgs+=(docker.io docker-compose)
command -v dockerd >/dev/null 2>&1 || { [[ " ${docker_pkgs[*]} " == *" docker.io "* ]] || docker_pkgs+=(docker.io); }
command -v debootstrap >/dev/null 2>&1 || docker_pkgs+=(debootstrap)

echo "make test: what this run does to the host"
echo "  - in this checkout: node_modules/, .venv/ (Python ~6 GB through the uv cache), .tools/ (Node 22 when the host's is older), .test-results/"
echo "  - in ~/.cache: uv's package cache, ~/.cache/steadydancer (pinned sources, tiny random-weight models)"
if ((${#missing[@]})); then
  echo "  - apt-get install: ${missing[*]} (missing here; needs root, else those tests skip)"
fi
if ((${#docker_pkgs[@]})); then
  echo "  - apt-get install: ${docker_pkgs[*]} (no Docker engine here; needs root, else the image tests skip)"
fi
if ! "${DOCKER_BIN:-/usr/bin/docker}" info >/dev/null 2>&1; then
  [[ -e /etc/docker/daemon.json ]] || echo "  - writes /etc/docker/daemon.json (BuildKit cache garbage collection, keep ${STEADYDANCER_BUILDER_KEEP:-30GB})"
  echo "  - starts dockerd (no iptables, no bridge) and LEAVES IT RUNNING after the tests; stop it with: kill \$(pidof dockerd)"
fi
echo "  - builds the stand-in base image local/base:bookworm (debootstrap) and test images in the Docker root"
echo "  First run on a 2-core host: about 17 min and about 33 GB of disk (uv cache, .venv, Docker images); later runs reuse all of it."
