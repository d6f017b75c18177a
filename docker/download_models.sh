#!/usr/bin/env bash
# Download (or check) the model files of one SteadyDancer variant into a models directory.
# A thin wrapper around the toolkit's `steadydancer models download`, which reads
# docker/models.json (the one list of model files), downloads in parallel with resume and
# sha256 checks, and skips files already verified. Used by the Dockerfile
# (BAKE_STEADYDANCER=true) and by start.sh (ENABLE_STEADYDANCER=true, files missing).
#
#   download_models.sh --variant fp8|fp16|gguf-… --dest DIR [--jobs N] [--check]
#                      [--no-fallback] [--token-file FILE] [--json]
#
# The Hugging Face token comes only from HF_TOKEN, --token-file, or the BuildKit secret
# /run/secrets/hf_token; it is never printed. HF_ENDPOINT and HF_HUB_OFFLINE are honoured.
# Exit codes: 0 ok, 1 a file is missing/gated/corrupt, 2 usage, 3 network.
set -euo pipefail

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

die_usage() {
  echo "download_models.sh: $1" >&2
  echo "run with --help for usage" >&2
  exit 2
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${STEADYDANCER_HOME:-$(dirname "$here")}"
cli="$home/bin/steadydancer.js"

variant="${STEADYDANCER_VARIANT:-}"
dest="${MODELS_DIR:-}"
jobs=""
token_file=""
extra=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --variant) [[ $# -ge 2 ]] || die_usage "--variant needs a value"; variant="$2"; shift 2 ;;
    --variant=*) variant="${1#*=}"; shift ;;
    --dest) [[ $# -ge 2 ]] || die_usage "--dest needs a value"; dest="$2"; shift 2 ;;
    --dest=*) dest="${1#*=}"; shift ;;
    --jobs) [[ $# -ge 2 ]] || die_usage "--jobs needs a value"; jobs="$2"; shift 2 ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    --token-file) [[ $# -ge 2 ]] || die_usage "--token-file needs a value"; token_file="$2"; shift 2 ;;
    --token-file=*) token_file="${1#*=}"; shift ;;
    --check | --no-fallback | --json | --no-presets | -v | --verbose | -q | --quiet) extra+=("$1"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown option: $1" ;;
  esac
done

[[ -n "$dest" ]] || die_usage "no destination: pass --dest DIR or set MODELS_DIR"
if [[ -n "$jobs" && ! "$jobs" =~ ^[1-9][0-9]*$ ]]; then die_usage "--jobs must be a positive integer, got \"$jobs\""; fi
[[ -f "$cli" ]] || { echo "download_models.sh: the steadydancer toolkit is not at $cli (set STEADYDANCER_HOME to its folder)" >&2; exit 2; }
node_bin="${NODE:-node}"
command -v "$node_bin" >/dev/null 2>&1 || { echo "download_models.sh: node is not on PATH (Node.js >= 20 runs the toolkit)" >&2; exit 2; }

args=(models download --dest "$dest")
[[ -n "$variant" ]] && args+=(--variant "$variant")
[[ -n "$jobs" ]] && args+=(--jobs "$jobs")
# The manifest next to this script is the one the image was built with.
[[ -f "$here/models.json" ]] && args+=(--manifest "$here/models.json")
# Token: HF_TOKEN wins; else an explicit file; else the BuildKit secret when it is mounted.
if [[ -n "$token_file" ]]; then
  args+=(--token-file "$token_file")
elif [[ -z "${HF_TOKEN:-}" && -s /run/secrets/hf_token ]]; then
  args+=(--token-file /run/secrets/hf_token)
fi
args+=("${extra[@]}")

exec "$node_bin" "$cli" "${args[@]}"
