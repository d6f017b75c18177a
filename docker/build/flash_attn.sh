#!/bin/sh
# flash-attn from a prebuilt wheel only (never a source compile: hours on a build host).
# The wheel must match torch (major.minor), CUDA major, the CPython tag and the C++ ABI of the
# installed torch; the URL follows the Dao-AILab release naming unless FLASH_ATTN_WHEEL_URL
# names one. Without a usable wheel: ONE line saying so, and the build goes on — unless
# FLASH_ATTN_REQUIRED=true, where the step fails with a line starting
# STEADYDANCER_FLASH_ATTN_FAILED (what `steadydancer build` looks for to rebuild once with
# ENABLE_FLASH_ATTN=false).
set -eu
status_file=/opt/steadydancer/flash-attn.status
if [ "${ENABLE_FLASH_ATTN:-true}" != true ]; then
  echo "flash-attn: disabled (ENABLE_FLASH_ATTN=${ENABLE_FLASH_ATTN:-})"
  echo disabled >"$status_file"
  exit 0
fi
tags=$(python - <<'PY'
import sys, torch
tv = ".".join(torch.__version__.split("+")[0].split(".")[:2])
cu = (torch.version.cuda or "0").split(".")[0]
abi = "TRUE" if torch._C._GLIBCXX_USE_CXX11_ABI else "FALSE"
py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
print(tv, cu, abi, py)
PY
)
# shellcheck disable=SC2086
set -- $tags
tv=$1 cu=$2 abi=$3 py=$4
v=${FLASH_ATTN_VERSION:-2.8.3}
url=${FLASH_ATTN_WHEEL_URL:-https://github.com/Dao-AILab/flash-attention/releases/download/v${v}/flash_attn-${v}+cu${cu}torch${tv}cxx11abi${abi}-${py}-${py}-linux_x86_64.whl}
dir=$(mktemp -d)
whl="$dir/$(basename "$url")"
reason=""
if ! curl -fsSL --retry 2 --connect-timeout 20 --max-time 900 -o "$whl" "$url" 2>"$dir/err"; then
  reason="download failed: $(tr '\n' ' ' <"$dir/err" | cut -c1-160)"
elif ! uv pip install --no-deps "$whl" >"$dir/install.log" 2>&1; then
  reason="install failed: $(tail -n 1 "$dir/install.log")"
elif ! python -c "import torch, flash_attn, flash_attn_2_cuda" >"$dir/import.log" 2>&1; then
  reason="import failed: $(tail -n 1 "$dir/import.log")"
  uv pip uninstall flash-attn >/dev/null 2>&1 || true
fi
rm -rf "$dir"
if [ -z "$reason" ]; then
  echo "flash-attn: installed ${v} for torch ${tv} / CUDA ${cu} / ${py} / cxx11abi ${abi}"
  echo installed >"$status_file"
  exit 0
fi
if [ "${FLASH_ATTN_REQUIRED:-false}" = true ]; then
  echo "STEADYDANCER_FLASH_ATTN_FAILED: no usable flash-attn ${v} wheel for torch ${tv} / CUDA ${cu} / ${py} / cxx11abi ${abi} (${url}): ${reason}"
  exit 1
fi
echo "flash-attn: no prebuilt wheel for torch ${tv} / CUDA ${cu} / ${py} / cxx11abi ${abi} (${reason}); continuing without flash-attn (xformers / SDPA remain)"
echo "absent: ${reason}" >"$status_file"
