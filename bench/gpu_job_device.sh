#!/bin/bash
# Device run of bench/gpu_job.py (bench/pipeline-gpu.md, "Job-level run"): bash .gpu-job/bench/gpu_job_device.sh SECONDS
# from a checkout root holding .gpu-job/ made by bench/device_bundle.sh, plus wf/ (workflows filled by
# fillWorkflow) and samples/ (scripts/make_samples.py).
set -u
T=${1:-300}; G=$PWD/.gpu-job; t0=$(date +%s); export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.used,clocks.sm --format=csv,noheader
mkdir -p /tmp/site /tmp/cfy /tmp/off
tar xJf $G/site.tar.xz -C /tmp/site & tar xJf $G/comfyui.tar.xz -C /tmp/cfy & tar xJf $G/official.tar.xz -C /tmp/off & wait
export PYTHONPATH=/tmp/site:$G/stub
python3 -c "import fa3_fwd_interface, av, pydantic, sqlalchemy, torchsde, spandrel, rtmlib; print('imports ok')"
left=$(( T - ($(date +%s) - t0) - 8 ))
echo "unpacked in $(( $(date +%s) - t0 )) s; harness budget $left s"
timeout $left python3 $G/bench/gpu_job.py --comfyui /tmp/cfy --official /tmp/off --pack $G/pack --workflows ${WF:-$G/wf} \
  --samples $G/samples --out $OUT --restart ${RESTART:-5-std-restart} --budget $(( left - 5 )) --restart-need ${RESTART_NEED:-75} ${JOB_ARGS:-}
echo "rc=$? total $(( $(date +%s) - t0 )) s"
