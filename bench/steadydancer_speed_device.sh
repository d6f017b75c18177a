#!/bin/bash
# Device run for issue #13 (bench/steadydancer-speed.md): phase A (no sage) while SageAttention2 builds, then phase B.
# Run from a checkout root holding .gpu-speed/{ComfyUI,repo,whl,sage.tar} (see the .md); SPEEDS_A/ARGS_A/TA, SPEEDS_B/ARGS_B/TB.
set -u
G=$PWD/.gpu-speed; export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.used,clocks.sm --format=csv,noheader | tee $OUT/nvidia-smi.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $G/whl/*.whl || exit 1
# SageAttention2 from source for sm_90a (pinned commit, as docker/Dockerfile); CUDA 13's warpSize
# is a run-time value, so the fixed-size shared arrays get literal sizes (32, 33); the first form of
# this patch (only [warpSize]) was what ran on 2026-12-02 and failed on [warpSize + 1]: this one is untried there
( cd /tmp && tar xf $G/sage.tar && cd sage && sed -i -e 's/\[warpSize\]/[32]/g' -e 's/\[warpSize + 1\]/[33]/g' csrc/reduction_utils.cuh && t0=$(date +%s) && \
  TORCH_CUDA_ARCH_LIST=9.0 EXT_PARALLEL=4 MAX_JOBS=14 NVCC_APPEND_FLAGS="--threads 4" \
  python3 -m pip install -q --no-build-isolation --no-deps --no-cache-dir --target /tmp/sagesite . >$OUT/sage_build.log 2>&1; \
  echo "rc=$? seconds=$(( $(date +%s) - t0 ))" >> $OUT/sage_build.log ) &
SAGE=$!
cd $G/repo
export PYTHONPATH=/tmp/site
B="python3 bench/steadydancer_forward.py --comfyui $G/ComfyUI"
if [ -n "${SPEEDS_A:-}" ]; then
timeout ${TA:-330} $B ${ARGS_A} --speeds ${SPEEDS_A} --jsonl $OUT/speed.jsonl 2>&1 | grep -v "^$" | tee $OUT/bench_a.log | grep '^{' | cut -c1-330
fi
wait $SAGE; tail -2 $OUT/sage_build.log
export PYTHONPATH=/tmp/site:/tmp/sagesite
if [ -n "${SPEEDS_B:-}" ]; then
timeout ${TB:-200} $B ${ARGS_B} --speeds ${SPEEDS_B} --jsonl $OUT/speed.jsonl 2>&1 | grep -v "^$" | tee $OUT/bench_b.log | grep '^{' | cut -c1-330
fi
