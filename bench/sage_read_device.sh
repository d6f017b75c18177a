#!/bin/bash
# Device run (issue #13): SageAttention2 built from source while the checkpoint read is measured,
# then the pack's forward with SageAttention2 beside FA3 fp8 (bench/steadydancer-speed.md, "SageAttention2").
# From a checkout root holding .gpu-speed/{comfyui,official}.tar.xz, sage.tar, whl/, repo/{bench,comfyui-steadydancer}.
set -u
G=$PWD/.gpu-speed; export PYTHONUNBUFFERED=1; t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.used --format=csv,noheader | tee $OUT/nvidia-smi.txt
nvcc --version | tail -2
mkdir -p /tmp/cfy /tmp/off && tar xJf $G/comfyui.tar.xz -C /tmp/cfy && tar xJf $G/official.tar.xz -C /tmp/off
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $G/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
# SageAttention2 at the Dockerfile's pinned commit for sm_90a. CUDA 13 made warpSize a run-time
# value: the fixed-size shared arrays of reduction_utils.cuh get literal sizes (32, 33), as the
# Dockerfile's patch does.
( cd /tmp && tar xf $G/sage.tar && cd sage && sed -i -e 's/\[warpSize\]/[32]/g' -e 's/\[warpSize + 1\]/[33]/g' csrc/reduction_utils.cuh && \
  grep -c "warpSize" csrc/reduction_utils.cuh > $OUT/sage_build.log; s=$(date +%s); \
  TORCH_CUDA_ARCH_LIST=9.0 EXT_PARALLEL=4 MAX_JOBS=12 NVCC_APPEND_FLAGS="--threads 4" \
  python3 -m pip install -q --no-build-isolation --no-deps --no-cache-dir --target /tmp/sagesite . >>$OUT/sage_build.log 2>&1; \
  echo "rc=$? seconds=$(( $(date +%s) - s ))" >> $OUT/sage_build.log ) &
SAGE=$!
el "full-size model set"
python3 $G/repo/comfyui-steadydancer/tests/fixtures/make_tiny_models.py --comfyui /tmp/cfy --official /tmp/off --full-size --device cuda \
  --variant fp8 --text-cache /tmp/tc /tmp/models 2>&1 | tail -1 | cut -c1-200
M=$(ls /tmp/models/diffusion_models/*.safetensors | head -1); ls -la $M
el "checkpoint read"
python3 $G/repo/bench/model_read.py --comfyui /tmp/cfy --pack $G/repo/comfyui-steadydancer --file $M --threads ${READ_THREADS:-0,8,16} --jsonl $OUT/read.jsonl
rm -rf /tmp/models
el "waiting for the SageAttention2 build"; wait $SAGE; tail -3 $OUT/sage_build.log
export PYTHONPATH=/tmp/site:/tmp/sagesite
python3 -c "import sageattention, torch; print('sageattention imports', sageattention.__file__)" 2>&1 | tail -1
cd $G/repo && el "forward"
timeout ${TF:-260} python3 bench/steadydancer_forward.py --comfyui /tmp/cfy --speeds ${SPEEDS:-sage:rowwise:on,fa3_fp8:rowwise:on:fastacc} \
  ${ARGS:---sizes 832x480x81 --kernels 35880 --sample-steps 4 --repeat 2} --jsonl $OUT/speed.jsonl 2>&1 | grep -v "^$" > $OUT/forward.log
grep '^{' $OUT/forward.log | cut -c1-300; tail -3 $OUT/forward.log | cut -c1-300
el "done"
