#!/usr/bin/env bash
# Entrypoint of the SteadyDancer image.
#   start.sh                 start in $STEADYDANCER_MODE (default: pod)
#   start.sh CMD [ARGS...]   run CMD instead (verification runs, shells)
# Structure: small functions, one per concern, and a mode dispatch in main(). A new mode is a
# new run_<mode> function plus one line in main()'s case. Sourcing this file (tests) defines
# the functions without running main.
set -euo pipefail

COMFYUI_DIR=${COMFYUI_DIR:-/opt/ComfyUI}
STEADYDANCER_HOME=${STEADYDANCER_HOME:-/opt/steadydancer}
COMFYUI_PORT=${COMFYUI_PORT:-8188}
COMFYUI_LISTEN=${COMFYUI_LISTEN:-0.0.0.0}
COMFYUI_ARGS=${COMFYUI_ARGS:-}
ENABLE_STEADYDANCER=${ENABLE_STEADYDANCER:-false}
# The model variant is decided by the toolkit's one rule (src/models/variant.ts): this value
# when set, else what MODELS_DIR holds verified, else docker/models.json's default. No default
# here: a second list of defaults would disagree with the manifest.
STEADYDANCER_VARIANT=${STEADYDANCER_VARIANT:-}
# pod | serverless | api. RunPod sets RUNPOD_WEBHOOK_GET_JOB only on serverless workers, so
# that is the default there; everywhere else the default is pod.
if [[ -n "${RUNPOD_WEBHOOK_GET_JOB:-}" ]]; then
  STEADYDANCER_MODE=${STEADYDANCER_MODE:-serverless}
else
  STEADYDANCER_MODE=${STEADYDANCER_MODE:-pod}
fi
API_PORT=${API_PORT:-8000}
API_HOST=${API_HOST:-0.0.0.0}
NODE=${NODE:-node}
# auto | sage | fa3 | fa3_fp8 | flash | xformers | pytorch. ComfyUI's own attention flag follows
# from it (attention_flag); the SteadyDancer pack reads the same variable for the Wan blocks
# (comfyui-steadydancer/steadydancer/fast.py: sage, fa3, fa3_fp8, pytorch; auto = its fastest).
ATTENTION_BACKEND=${ATTENTION_BACKEND:-auto}
export ATTENTION_BACKEND
PYTHON=${PYTHON:-python}

log() { echo "[start] $*" >&2; }

# MODELS_DIR: explicit value, else the serverless network volume, else the pod volume, else
# the image's own models folder.
resolve_models_dir() {
  if [[ -n "${MODELS_DIR:-}" ]]; then
    echo "$MODELS_DIR"
  elif [[ -d /runpod-volume ]]; then
    echo /runpod-volume/models
  elif [[ -d /workspace ]]; then
    echo /workspace/models
  else
    echo "$COMFYUI_DIR/models"
  fi
}

# Compute capability of GPU 0 as "major.minor", or nothing when there is no usable GPU.
gpu_compute_capability() {
  local cc=""
  if command -v nvidia-smi >/dev/null 2>&1; then
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '[:space:]') || cc=""
  fi
  if [[ ! "$cc" =~ ^[0-9]+\.[0-9]+$ ]]; then
    cc=$("$PYTHON" -c 'import torch
if torch.cuda.is_available():
    print("%d.%d" % torch.cuda.get_device_capability(0))' 2>/dev/null) || cc=""
  fi
  [[ "$cc" =~ ^[0-9]+\.[0-9]+$ ]] && echo "$cc"
  return 0
}

# Whether the image has an attention backend (image.json written at build time).
has_backend() {
  local info="$STEADYDANCER_HOME/image.json"
  [[ -f "$info" ]] || return 1
  "$PYTHON" -c 'import json, sys
a = json.load(open(sys.argv[1])).get("attention", {})
sys.exit(0 if a.get(sys.argv[2]) else 1)' "$info" "$1" 2>/dev/null
}

# The ComfyUI attention flag for a compute capability ("" = no GPU).
#  - no GPU: --cpu (ComfyUI's CPU mode)
#  - sm 8.0–9.0 (Ampere, Ada, Hopper): SageAttention, else flash-attn 2, else xformers, else SDPA
#  - sm >= 10 (Blackwell): SageAttention when built for it, else PyTorch SDPA (flash-attn 2
#    and xformers 0.0.32 kernels do not target sm_100/sm_120)
#  - older than 8.0: PyTorch SDPA
attention_flag() {
  local cc=$1 major
  case "$ATTENTION_BACKEND" in
    sage) echo "--use-sage-attention"; return ;;
    # FlashAttention-3 is ours only (the pack's Wan blocks): ComfyUI keeps SDPA for the rest
    fa3 | fa3_fp8) echo "--use-pytorch-cross-attention"; return ;;
    flash) echo "--use-flash-attention"; return ;;
    xformers) echo ""; return ;;
    pytorch) echo "--use-pytorch-cross-attention"; return ;;
    auto) ;;
    *) log "unknown ATTENTION_BACKEND=$ATTENTION_BACKEND (auto|sage|fa3|fa3_fp8|flash|xformers|pytorch); using auto" ;;
  esac
  if [[ -z "$cc" ]]; then
    echo "--cpu"
    return
  fi
  major=${cc%%.*}
  if ((major >= 10)); then
    if has_backend sageattention; then echo "--use-sage-attention"; else echo "--use-pytorch-cross-attention"; fi
  elif ((major >= 8)); then
    if has_backend sageattention; then
      echo "--use-sage-attention"
    elif has_backend flash_attn; then
      echo "--use-flash-attention"
    elif has_backend xformers; then
      echo "" # ComfyUI uses xformers by default when it imports
    else
      echo "--use-pytorch-cross-attention"
    fi
  else
    echo "--use-pytorch-cross-attention"
  fi
}

# A config block for a MODELS_DIR that extra_model_paths.yaml does not already map.
write_models_config() {
  local dir=$1 out=$2 key
  {
    echo "steadydancer_models_dir:"
    echo "  base_path: $dir"
    for key in diffusion_models text_encoders clip_vision vae loras detection checkpoints; do
      echo "  $key: $key"
    done
  } >"$out"
}

# With ENABLE_STEADYDANCER=true and files of the variant missing from MODELS_DIR, fetch them
# (`--check` first, so a complete volume costs no network; the downloader itself also skips
# files already present and verified). A failure is logged; ComfyUI still starts unless
# STEADYDANCER_REQUIRE_MODELS=true.
ensure_models() {
  local dir=$1 jobs=${DOWNLOAD_JOBS:-4}
  [[ "$ENABLE_STEADYDANCER" == true ]] || return 0
  local script="$STEADYDANCER_HOME/docker/download_models.sh"
  if [[ ! -x "$script" ]]; then
    log "ENABLE_STEADYDANCER=true but $script is missing"
    [[ "${STEADYDANCER_REQUIRE_MODELS:-false}" == true ]] && return 1
    return 0
  fi
  mkdir -p "$dir"
  local what=${STEADYDANCER_VARIANT:-"the toolkit's choice"} variant_args=()
  [[ -n "$STEADYDANCER_VARIANT" ]] && variant_args=(--variant "$STEADYDANCER_VARIANT")
  log "checking SteadyDancer models ($what) in $dir"
  if "$script" "${variant_args[@]}" --dest "$dir" --check >/dev/null 2>&1; then
    log "every model file of $what is present"
    return 0
  fi
  log "fetching the missing model files"
  if ! "$script" "${variant_args[@]}" --dest "$dir" --jobs "$jobs"; then
    log "model download failed (variant $what, dest $dir)"
    [[ "${STEADYDANCER_REQUIRE_MODELS:-false}" == true ]] && return 1
  fi
  return 0
}

# Reads the variant's model files into the page cache in the background (`models prefetch`)
# once ComfyUI answers, while the job's first stages (video, pose, CLIP, VAE encode) run, so that
# the model loader finds the 16 GB checkpoint in memory. Not from the process start: beside
# ComfyUI's imports it took the disk from them (H200 host: cold start 67.3 s instead of 61.9 s).
# Opt-in (MODELS_PREFETCH=true) until this after-ComfyUI shape is measured on a GPU host: only the
# from-start one was. Its report goes to stderr; a failure costs only the overlap.
prefetch_models() {
  local dir=$1
  [[ "${MODELS_PREFETCH:-false}" == true ]] || return 0
  local cli="$STEADYDANCER_HOME/bin/steadydancer.js" variant_args=()
  if [[ ! -f "$cli" ]] || ! command -v "$NODE" >/dev/null 2>&1; then
    log "model prefetch skipped: no toolkit at $cli or no $NODE"
    return 0
  fi
  [[ -n "$STEADYDANCER_VARIANT" ]] && variant_args=(--variant "$STEADYDANCER_VARIANT")
  log "prefetching the model files in $dir once ComfyUI answers (background)"
  "$NODE" "$cli" models prefetch "${variant_args[@]}" --dest "$dir" --jobs "${PREFETCH_JOBS:-8}" \
    --after-comfy "http://127.0.0.1:$COMFYUI_PORT" 1>&2 &
}

# Builds the ComfyUI command line into the array COMFY_CMD.
comfyui_command() {
  local listen=$1 models_dir=$2 cc flag
  cc=$(gpu_compute_capability)
  flag=$(attention_flag "$cc")
  log "GPU compute capability: ${cc:-none}; attention flag: ${flag:-(default: xformers)}"
  COMFY_CMD=("$PYTHON" "$COMFYUI_DIR/main.py" --listen "$listen" --port "$COMFYUI_PORT")
  # The prompt-embedding cache of our pack lives with the models (the network volume), so that
  # every worker on the volume reuses it and never loads the text encoder for a cached prompt.
  export STEADYDANCER_TEXT_CACHE="${STEADYDANCER_TEXT_CACHE:-$models_dir/text_cache}"
  log "text cache: $STEADYDANCER_TEXT_CACHE"
  # torch.compile's cache (the pack compiles the transformer block once) with the models too, so
  # that a new pod or worker on the same volume skips most of the compile on its first job.
  export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$models_dir/.cache/torchinductor}"
  if [[ -n "$flag" && " $COMFYUI_ARGS " != *" --cpu "* ]]; then COMFY_CMD+=("$flag"); fi
  # ComfyUI's API nodes (paid partner services behind a comfy.org login) are not what this image
  # is for, and loading them is ~1.2 s of every start (web root → server up: 4.2 s with them,
  # 3.05 s without, H200 host, cold page cache): off unless COMFYUI_API_NODES=true.
  if [[ "${COMFYUI_API_NODES:-false}" != true ]]; then COMFY_CMD+=(--disable-api-nodes); fi
  case "$models_dir" in
    /runpod-volume/models | /workspace/models | "$COMFYUI_DIR/models") ;;
    *)
      write_models_config "$models_dir" /tmp/steadydancer-models-dir.yaml
      COMFY_CMD+=(--extra-model-paths-config /tmp/steadydancer-models-dir.yaml)
      ;;
  esac
  if [[ -n "$COMFYUI_ARGS" ]]; then
    local extra
    read -r -a extra <<<"$COMFYUI_ARGS"
    COMFY_CMD+=("${extra[@]}")
  fi
}

CHILD_PID=""
forward_signal() {
  local sig=$1
  if [[ -n "$CHILD_PID" ]] && kill -0 "$CHILD_PID" 2>/dev/null; then
    log "received SIG$sig: forwarding to ComfyUI (pid $CHILD_PID)"
    kill -"$sig" "$CHILD_PID" 2>/dev/null || true
  fi
}

# Runs a command in the background, forwards TERM/INT/HUP to it, returns its exit status.
run_forwarding() {
  "$@" &
  CHILD_PID=$!
  trap 'forward_signal TERM' TERM
  trap 'forward_signal INT' INT
  trap 'forward_signal HUP' HUP
  local status=0
  while true; do
    wait "$CHILD_PID" && status=0 || status=$?
    # wait returns >128 when a trapped signal interrupted it; the child may still run.
    if kill -0 "$CHILD_PID" 2>/dev/null; then continue; fi
    break
  done
  return "$status"
}

# SSH for pods: with PUBLIC_KEY set (RunPod's convention), authorize it for root and start sshd.
# No key, no sshd: the image never runs an SSH server nobody can log in to.
SSHD=${SSHD:-/usr/sbin/sshd}
SSH_DIR=${SSH_DIR:-/root/.ssh}
start_sshd() {
  [[ -n "${PUBLIC_KEY:-}" ]] || return 0
  if [[ ! -x "$SSHD" ]]; then
    log "PUBLIC_KEY is set but this image has no sshd ($SSHD; openssh-server); SSH is not started"
    return 0
  fi
  mkdir -p "$SSH_DIR" /run/sshd 2>/dev/null || mkdir -p "$SSH_DIR"
  chmod 700 "$SSH_DIR"
  printf '%s\n' "$PUBLIC_KEY" >>"$SSH_DIR/authorized_keys"
  chmod 600 "$SSH_DIR/authorized_keys"
  ssh-keygen -A >/dev/null 2>&1 || true
  if "$SSHD" -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password; then
    log "sshd started (key authentication only)"
  else
    log "sshd failed to start"
  fi
}

# pod: ComfyUI's UI on 0.0.0.0:$COMFYUI_PORT, SSH when PUBLIC_KEY is set, models on /workspace
# when it exists.
run_pod() {
  local models_dir
  models_dir=$(resolve_models_dir)
  export MODELS_DIR="$models_dir"
  log "mode pod; MODELS_DIR=$models_dir"
  start_sshd
  ensure_models "$models_dir"
  prefetch_models "$models_dir"
  comfyui_command "$COMFYUI_LISTEN" "$models_dir"
  log "starting: ${COMFY_CMD[*]}"
  cd "$COMFYUI_DIR"
  run_forwarding "${COMFY_CMD[@]}"
}

# serverless: ComfyUI bound to 127.0.0.1 only (nothing outside the worker can reach it), models
# on the network volume (/runpod-volume/models), and the worker in front of it. The worker
# supervises ComfyUI (it starts the command after "--", restarts it when it dies and fails the
# job in flight with a clear error), so the worker is the one process this script waits on.
run_serverless() {
  local models_dir
  models_dir=$(resolve_models_dir)
  export MODELS_DIR="$models_dir"
  log "mode serverless; MODELS_DIR=$models_dir"
  ensure_models "$models_dir"
  prefetch_models "$models_dir"
  comfyui_command 127.0.0.1 "$models_dir"
  log "starting the worker in front of: ${COMFY_CMD[*]}"
  cd "$COMFYUI_DIR"
  run_forwarding "$NODE" "$STEADYDANCER_HOME/bin/steadydancer.js" worker \
    --comfy-url "http://127.0.0.1:$COMFYUI_PORT" -- "${COMFY_CMD[@]}"
}

# api: the local API with RunPod's routes on $API_HOST:$API_PORT (docker compose, local tests),
# ComfyUI's UI still on $COMFYUI_LISTEN:$COMFYUI_PORT, supervised by the API server.
run_api() {
  local models_dir
  models_dir=$(resolve_models_dir)
  export MODELS_DIR="$models_dir"
  log "mode api; MODELS_DIR=$models_dir; API on $API_HOST:$API_PORT"
  ensure_models "$models_dir"
  prefetch_models "$models_dir"
  comfyui_command "$COMFYUI_LISTEN" "$models_dir"
  cd "$COMFYUI_DIR"
  run_forwarding "$NODE" "$STEADYDANCER_HOME/bin/steadydancer.js" serve \
    --host "$API_HOST" --port "$API_PORT" --comfy-url "http://127.0.0.1:$COMFYUI_PORT" -- "${COMFY_CMD[@]}"
}

main() {
  if (($# > 0)); then
    exec "$@"
  fi
  case "$STEADYDANCER_MODE" in
    pod) run_pod ;;
    serverless) run_serverless ;;
    api) run_api ;;
    *)
      log "unknown STEADYDANCER_MODE=$STEADYDANCER_MODE (known: pod, serverless, api)"
      return 2
      ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
