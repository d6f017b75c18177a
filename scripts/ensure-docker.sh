#!/usr/bin/env bash
# Make a Docker engine answer on this machine, idempotently.
#  1. Installs Debian's docker.io, docker-compose (1.29) and debootstrap when /usr/bin/docker or
#     dockerd is missing (root + apt-get only; otherwise says what to do and exits 0 so that the
#     integration tests skip loudly instead of the whole test run failing).
#  2. Starts dockerd (no iptables, no bridge, overlay2) when no engine answers, and waits for it.
#  3. With --base, also makes the stand-in base image (scripts/make-base-image.sh).
# Env: DOCKER_BIN (default /usr/bin/docker), STEADYDANCER_DOCKERD_LOG, STEADYDANCER_NO_APT=1.
set -euo pipefail

DOCKER_BIN=${DOCKER_BIN:-/usr/bin/docker}
LOG=${STEADYDANCER_DOCKERD_LOG:-/var/log/steadydancer-dockerd.log}
LOCK=${STEADYDANCER_DOCKER_LOCK:-/tmp/steadydancer-ensure-docker.v2.lock}
want_base=false
for arg in "$@"; do
  case "$arg" in
    --base) want_base=true ;;
    -h | --help)
      sed -n '2,8p' "$0"
      exit 0
      ;;
    *)
      echo "ensure-docker: unknown argument $arg" >&2
      exit 2
      ;;
  esac
done

say() { echo "ensure-docker: $*" >&2; }

engine_answers() { "$DOCKER_BIN" info >/dev/null 2>&1; }

install_packages() {
  if [[ -x "$DOCKER_BIN" ]] && command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1; then
    return 0
  fi
  if [[ "${STEADYDANCER_NO_APT:-}" == 1 ]]; then
    say "docker.io/debootstrap missing and STEADYDANCER_NO_APT=1: not installing"
    return 1
  fi
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    say "no Docker engine installed; install docker.io, docker-compose and debootstrap (needs root + apt-get)"
    return 1
  fi
  say "installing docker.io docker-compose debootstrap (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io docker-compose debootstrap >/dev/null
}

start_engine() {
  engine_answers && return 0
  if [[ $(id -u) -ne 0 ]]; then
    say "no Docker engine answers and this is not root: start dockerd yourself"
    return 1
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    # Bound the BuildKit cache (the image build's layers and uv/apt/npm cache mounts) so that
    # repeated builds on a shared disk garbage-collect instead of filling it.
    if [[ ! -e /etc/docker/daemon.json ]]; then
      mkdir -p /etc/docker
      printf '{"builder": {"gc": {"enabled": true, "defaultKeepStorage": "%s"}}}\n' "${STEADYDANCER_BUILDER_KEEP:-30GB}" >/etc/docker/daemon.json
    fi
    say "starting dockerd (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    # setsid: the engine outlives this script and the test process that called it; fd 9 (the
    # lock) is closed for it, or the daemon would hold the lock for its whole life.
    setsid dockerd --iptables=false --bridge=none --storage-driver=overlay2 >>"$LOG" 2>&1 </dev/null 9>&- &
  fi
  for _ in $(seq 1 60); do
    engine_answers && return 0
    sleep 1
  done
  say "dockerd did not answer within 60 s; see $LOG"
  tail -n 20 "$LOG" >&2 || true
  return 1
}

main() {
  # Fast path: an engine answers (and the base image exists when asked for): nothing to lock.
  if engine_answers && { [[ "$want_base" != true ]] || "$DOCKER_BIN" image inspect "${BASE_TAG:-local/base:bookworm}" >/dev/null 2>&1; }; then
    return 0
  fi
  exec 9>"$LOCK"
  flock -w 600 9 || { say "another ensure-docker holds $LOCK"; return 1; }
  install_packages || return 0
  start_engine || return 0
  say "engine ready: $("$DOCKER_BIN" version --format '{{.Server.Version}}' 2>/dev/null)"
  if [[ "$want_base" == true ]]; then
    "$(dirname "$0")/make-base-image.sh"
  fi
}

main
