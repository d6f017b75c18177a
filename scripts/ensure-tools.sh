#!/usr/bin/env bash
# Installs the command-line tools the tests use when they are missing (Debian packages, root +
# apt-get only). Never fails: without them the tests that need them skip loudly.
#   ffmpeg (ffmpeg + ffprobe): job media validation and mp4 checks (serverless, smoke, e2e)
set -uo pipefail

say() { echo "[ensure-tools] $*" >&2; }

missing=()
command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  say "missing: ${missing[*]}; install them (apt-get install ${missing[*]}) or the tests that need them skip"
  exit 0
fi
say "installing ${missing[*]} (apt-get)"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  say "apt-get install ${missing[*]} failed; the tests that need them skip"
fi
exit 0
