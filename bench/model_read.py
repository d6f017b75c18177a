#!/usr/bin/env python3
"""Cold read of a SteadyDancer checkpoint by our loader: ComfyUI's mmap reader vs the parallel reader.

    python3 bench/model_read.py --comfyui DIR --pack DIR --file MODEL.safetensors [--threads 0,8,16] [--jsonl OUT]

For each thread count (0 = ComfyUI's ``safe_open`` mmap path, STEADYDANCER_READ_THREADS=0), in a new
process: drop the page cache (/proc/sys/vm/drop_caches; the record says whether that worked, a warm
cache makes the figure meaningless), then time ``loading.load_steadydancer(file)`` — read, convert,
model built and weights in place, on the CPU (the GPU transfer happens in the first sampler step and
is not part of this). Records: seconds, GB/s of the file, peak RSS of the child (GiB).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def child(a):
    sys.path.insert(0, a.comfyui)
    import types

    import comfy.options  # noqa: F401
    from comfy.cli_args import args

    args.cpu = True  # the loader's CPU part only
    pkg = types.ModuleType("sdpack")
    pkg.__path__ = [a.pack]
    sys.modules["sdpack"] = pkg
    import importlib

    loading = importlib.import_module("sdpack.steadydancer.loading")
    t0 = time.perf_counter()
    patcher = loading.load_steadydancer(a.file)
    dt = time.perf_counter() - t0
    n = sum(p.numel() for p in patcher.model.diffusion_model.parameters())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"load_s": round(dt, 2), "params": n, "peak_rss_gib": round(rss, 2)}))


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--pack", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--threads", default="0,8,16")
    ap.add_argument("--jsonl")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    size = os.path.getsize(a.file)
    for t in [int(v) for v in a.threads.split(",")]:
        dropped = drop_caches()
        env = {**os.environ, "STEADYDANCER_READ_THREADS": str(t)}
        out = subprocess.run([sys.executable, __file__, "--child", "--comfyui", a.comfyui, "--pack", a.pack, "--file", a.file], env=env, capture_output=True, text=True)
        rec = {"threads": t, "reader": "comfyui mmap" if t == 0 else f"parallel x{t}", "file_gb": round(size / 1e9, 2), "page_cache_dropped": dropped}
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode or not lines:
            rec["error"] = (out.stderr or out.stdout)[-600:]
        else:
            rec.update(json.loads(lines[-1]))
            rec["gb_per_s"] = round(size / 1e9 / rec["load_s"], 2)
        line = json.dumps(rec)
        print(line, flush=True)
        if a.jsonl:
            with open(a.jsonl, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
