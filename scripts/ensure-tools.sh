#!/usr/bin/env bash
# Installs the host programs that `make test` and `steadydancer lint` use, when missing:
#   - the Debian package `shellcheck`, for lint rule SH001;
#   - `ffmpeg` (ffmpeg + ffprobe): job media validation and mp4 checks (serverless, smoke, e2e).
#   - `chromium` (Debian's): the browser check of `steadydancer smoke` (Playwright drives it).
# Idempotent: does nothing when they are present. Never fails the caller: when a tool cannot be
# installed (no apt, no root), it says so and the tests that need it skip loudly.
set -uo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
{ command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1; } || need+=(ffmpeg)
[ "${#need[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-tools: missing ${need[*]} and no apt-get here; install them by hand (tests that need them will skip)" >&2
  exit 0
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    echo "ensure-tools: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]} (tests that need them will skip)" >&2
    exit 0
  fi
fi
echo "ensure-tools: installing ${need[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
  "${sudo_cmd[@]}" apt-get update -q >/dev/null 2>&1 || true
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "ensure-tools: could not install ${need[*]} (tests that need them will skip)" >&2
fi
exit 0
