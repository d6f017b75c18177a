#!/usr/bin/env python3
"""GPU bench of the dance workflow: full-size random weights, native ComfyUI, per-stage times.

    python bench/gpu_pipeline.py --comfyui DIR --official DIR --pack DIR --workflows DIR --samples DIR --out DIR

--workflows holds API workflows already filled by the toolkit's fillWorkflow (src/comfy/workflow.ts),
one per size (e.g. 512x512x33.json). Steps: make the model set (make_tiny_models.py --full-size on the
GPU), start ComfyUI, queue each workflow twice (the first run includes loading), follow /ws with
timestamps per node and per sampling step, sample nvidia-smi memory every 0.2 s.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import aiohttp

NAMES = {
    "5": "pose (detect+align+render)",
    "9": "text (cache)",
    "11": "CLIP ref",
    "13": "CLIP pose",
    "15": "VAE encode (conditioning)",
    "6": "model load",
    "7": "LoRA",
    "20": "sampling",
    "21": "VAE decode",
    "23": "save mp4",
}


def mem_sampler(stop, peak):
    while not stop.is_set():
        try:
            v = int(subprocess.check_output(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]).split()[0])
            peak[0] = max(peak[0], v)
        except Exception:
            pass
        time.sleep(0.2)


async def run_job(url, wf, log):
    cid = str(uuid.uuid4())
    ev = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{url.replace('http', 'ws')}/ws?clientId={cid}", max_msg_size=0) as ws:
            async with s.post(f"{url}/prompt", json={"prompt": wf, "client_id": cid}) as r:
                body = await r.json()
                if r.status != 200:
                    return {"error": body}
                pid = body["prompt_id"]
            t0 = time.time()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                d = m.get("data", {})
                if d.get("prompt_id") not in (None, pid):
                    continue
                ev.append((time.time() - t0, m["type"], d.get("node"), d.get("value"), d.get("max")))
                if m["type"] == "execution_error":
                    return {"error": {k: d.get(k) for k in ("node_id", "node_type", "exception_message")}, "events": ev}
                if m["type"] == "execution_success" or (m["type"] == "executing" and d.get("node") is None):
                    break
    # per-node durations from consecutive 'executing' events
    stages, cur, start = {}, None, 0.0
    steps = [e[0] for e in ev if e[1] == "progress" and e[2] == "20"]
    for t, typ, node, *_ in ev:
        if typ == "executing":
            if cur is not None:
                stages[NAMES.get(cur, cur)] = round(stages.get(NAMES.get(cur, cur), 0) + t - start, 3)
            cur, start = node, t
    step_times = [round(b - a, 3) for a, b in zip([stages_start(ev)] + steps[:-1], steps)] if steps else []
    return {"total_s": round(ev[-1][0], 3) if ev else None, "stages_s": stages, "step_s": step_times}


def stages_start(ev):
    return next((t for t, typ, node, *_ in ev if typ == "executing" and node == "20"), 0.0)


def main():
    ap = argparse.ArgumentParser()
    for k in ("comfyui", "official", "pack", "workflows", "samples", "out"):
        ap.add_argument(f"--{k}", required=True)
    ap.add_argument("--port", type=int, default=8188)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    base = Path("/tmp/sdbench")
    shutil.rmtree(base, ignore_errors=True)
    for d in ("custom_nodes", "input", "output", "user"):
        (base / d).mkdir(parents=True)
    os.symlink(Path(a.pack).resolve(), base / "custom_nodes" / "comfyui-steadydancer")
    for f in Path(a.samples).iterdir():
        shutil.copy(f, base / "input" / f.name)
    res = {"gpu": subprocess.check_output(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]).decode().strip()}
    t = time.time()
    from_pack = Path(a.pack) / "tests" / "fixtures" / "make_tiny_models.py"
    neg = json.loads(next(Path(a.workflows).glob("*.json")).read_text())["9"]["inputs"]["negative_prompt"]
    subprocess.check_call(
        [
            sys.executable,
            str(from_pack),
            str(base / "models"),
            "--comfyui",
            a.comfyui,
            "--official",
            a.official,
            "--full-size",
            "--device",
            "cuda",
            "--text-cache",
            str(base / "text_cache"),
            "--prompt",
            "a person dancing",
            "--prompt",
            neg,
        ]
    )
    res["make_models_s"] = round(time.time() - t, 1)
    log = open(out / "comfyui.log", "w")
    env = dict(os.environ, STEADYDANCER_TEXT_CACHE=str(base / "text_cache"), PYTHONUNBUFFERED="1")
    p = subprocess.Popen(
        [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(a.port), "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"],
        cwd=a.comfyui,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{a.port}"
    import urllib.request

    for _ in range(600):
        try:
            res["system_stats"] = json.load(urllib.request.urlopen(url + "/system_stats", timeout=2))
            break
        except Exception:
            if p.poll() is not None:
                raise SystemExit("ComfyUI exited; see comfyui.log") from None
            time.sleep(0.5)
    stop, peak = threading.Event(), [0]
    th = threading.Thread(target=mem_sampler, args=(stop, peak), daemon=True)
    th.start()
    res["jobs"] = {}
    for wf_file in sorted(Path(a.workflows).glob("*.json")):
        wf = json.loads(wf_file.read_text())
        for i in range(a.runs):
            peak[0] = 0
            r = asyncio.run(run_job(url, wf, log))
            r["peak_vram_mib_nvidia_smi"] = peak[0]
            res["jobs"][f"{wf_file.stem} run{i + 1}"] = r
            (out / "result.json").write_text(json.dumps(res, indent=2))
            if "error" in r:
                break
    stop.set()
    p.terminate()
    p.wait(30)
    for f in (base / "output").rglob("*.mp4"):
        res.setdefault("outputs", []).append(
            subprocess.check_output(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height,nb_frames", "-of", "json", str(f)]).decode() if shutil.which("ffprobe") else f.name
        )
    (out / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1)[:6000])


if __name__ == "__main__":
    main()
