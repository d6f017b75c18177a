#!/bin/bash
# Builds the folder the GPU benches carry to the device machine (it has torch, no network, no
# ComfyUI deps): bash bench/device_bundle.sh DIR [--no-fa3]
#   DIR/site.tar.xz     the Python packages ComfyUI and the pack need that the device lacks, as
#                       wheels unpacked (pip --target) and xz-packed (smaller than the wheels)
#   DIR/comfyui.tar.xz  ComfyUI at the pinned commit (source cache, no .git/tests)
#   DIR/official.tar.xz the official SteadyDancer wan/ package (make_tiny_models --full-size needs it)
#   DIR/stub/           an empty comfyui_frontend_package (the benches drive ComfyUI over its API)
#   DIR/pack/           this checkout's node pack;  DIR/bench/  this checkout's bench/
# On the device: mkdir -p /tmp/site && tar xJf DIR/site.tar.xz -C /tmp/site; PYTHONPATH=/tmp/site:DIR/stub
# Versions are the ones make's .venv resolves (comfyui-steadydancer/requirements*.txt), for cp312.
set -euo pipefail
dir=${1:?usage: bench/device_bundle.sh DIR [--no-fa3]}
root=$(cd "$(dirname "$0")/.." && pwd)
src=${STEADYDANCER_SOURCES:-$HOME/.cache/steadydancer/sources}
comfy=$(ls -d "$src"/ComfyUI@a125cd84* 2>/dev/null | head -1)
official=$(ls -d "$src"/SteadyDancer@866a7219* 2>/dev/null | head -1)
[[ -d "$comfy" && -d "$official" ]] || { echo "seed the source cache first: node bin/steadydancer.js sources fetch" >&2; exit 1; }
pkgs=(av==18.1.0 torchsde==0.2.6 trampoline==0.1.2 alembic==1.20.1 SQLAlchemy==2.1.9 Mako==1.4.3
  spandrel==0.4.2 pydantic==2.14.4 pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4
  typing-inspection==0.4.5 annotated-types==0.8.0 easydict==1.14 rtmlib==0.0.16 diffusers==0.35.2)
[[ "${2:-}" == --no-fa3 ]] || pkgs+=(fa3-fwd==0.0.3)
rm -rf "$dir" && mkdir -p "$dir/stub/comfyui_frontend_package" "$dir/.whl" "$dir/.site"
plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps "${plat[@]}" -d "$dir/.whl" "${pkgs[@]}"
python3 -m pip install -q --no-deps --no-compile "${plat[@]}" --target "$dir/.site" "$dir"/.whl/*.whl
tar -C "$dir/.site" -cf - . | xz -T0 -6 >"$dir/site.tar.xz"
rm -rf "$dir/.whl" "$dir/.site"
touch "$dir/stub/comfyui_frontend_package/__init__.py" && mkdir -p "$dir/stub/comfyui_frontend_package/static" && echo "<html></html>" >"$dir/stub/comfyui_frontend_package/static/index.html"
tar -C "$comfy" --exclude=.git --exclude=tests --exclude=tests-unit -cf - . | xz -T0 -6 >"$dir/comfyui.tar.xz"
tar -C "$official" -cf - wan | xz -T0 -6 >"$dir/official.tar.xz"
cp -r "$root/comfyui-steadydancer" "$dir/pack" && cp -r "$root/bench" "$dir/bench"
find "$dir" -name __pycache__ -prune -exec rm -rf {} +
du -sh "$dir"/* | sort -h
