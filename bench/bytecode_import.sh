#!/bin/bash
# Import time of torch + torchvision + ComfyUI core (comfy.sd, nodes) in a NEW container of IMAGE,
# with the image's bytecode and without any (an empty PYTHONPYCACHEPREFIX: every module compiled from
# source, as a container of an image whose installs wrote no .pyc does on its first start).
#   bash bench/bytecode_import.sh IMAGE [RUNS] > bench/results/bytecode-import-cpu.jsonl
set -euo pipefail
image=${1:?usage: bench/bytecode_import.sh IMAGE [RUNS]}
runs=${2:-3}
probe='import json, os, sys, time
t = time.time()
sys.argv = ["x", "--cpu"]; sys.path.insert(0, "/opt/ComfyUI"); os.chdir("/opt/ComfyUI")
import comfy.options; comfy.options.enable_args_parsing()
import torch, torchvision, comfy.sd, nodes
print(json.dumps({"bytecode": "PYTHONPYCACHEPREFIX" not in os.environ, "import_s": round(time.time() - t, 2), "modules": len(sys.modules)}))'
for i in $(seq "$runs"); do
  docker run --rm --network none "$image" python -c "$probe" 2>/dev/null | tail -1
  docker run --rm --network none -e PYTHONPYCACHEPREFIX=/tmp/no-bytecode "$image" python -c "$probe" 2>/dev/null | tail -1
done
