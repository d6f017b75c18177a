#!/usr/bin/env python3
"""Job-level GPU bench of the dance workflow (issue #13, Deliver 4): cold start, warm jobs, per stage.

    python bench/gpu_job.py --comfyui DIR --official DIR --pack DIR --workflows DIR --samples DIR --out DIR
                            [--models DIR] [--budget SECONDS] [--restart NAME] [--tiny]

--workflows holds API workflows filled by the toolkit's fillWorkflow (src/comfy/workflow.ts), run in name
order in ONE ComfyUI process: the first is the cold job (process start → job done = cold start, with an
empty torch.compile cache); the later ones are warm jobs (new seed and new input files, so nothing past
the model loaders is a ComfyUI cache hit). --restart NAME: after those, the process is stopped and a new
one runs workflow NAME with the compile cache the first process left (as the image keeps it on the models
volume): cold start with a warm compile cache. Each job's record is appended to OUT/jobs.jsonl as soon as
it is done (flushed), so a run cut short still leaves numbers.

Per job: every node's time (the gap between ComfyUI's `executing` events over /ws), the sampler's steps
(its `progress` events; step 1 counts from the sampler node's start), the sampler node's tail (last step →
node done: the sampler's own work after the model calls), the whole job (prompt accepted → done), and the
GPU's peak memory (nvidia-smi, sampled every 0.1 s during the job; the resident models included).
Models: make_tiny_models.py --full-size --device cuda (full-size random weights; tiny stand-in pose ONNX)
unless --models names a made set; page cache dropped before each process start where the kernel lets us.
--tiny: CPU smoke test of this harness (tiny models, ComfyUI --cpu).
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
import urllib.request
import uuid
from pathlib import Path

import aiohttp

# what each node of docker/workflows/steadydancer-dance.api.json is, by class (stage names of the report)
STAGE = {
    "SteadyDancerPosePrep": "pose",
    "LoadVideo": "load video",
    "GetVideoComponents": "load video",
    "SteadyDancerConditioning": "vae_encode",
    "SteadyDancerNegativePoseConditioning": "vae_encode",
    "SteadyDancerPoseAugment": "pose",
    "SteadyDancerPoseRender": "pose",
    "SamplerCustomAdvanced": "sampling",
    "VAEDecode": "vae_decode",
    "SteadyDancerVAEDecode": "vae_decode",
    "CreateVideo": "save_mp4",
    "SaveVideo": "save_mp4",
    "SteadyDancerSaveVideo": "save_mp4",
    "CLIPVisionEncode": "clip_vision",
    "SteadyDancerModelLoader": "loaders",
    "LoraLoaderModelOnly": "loaders",
    "CLIPVisionLoader": "loaders",
    "VAELoader": "loaders",
    "SteadyDancerPoseModelLoader": "loaders",
}


class Peak:
    """GPU memory in use (MiB, whole GPU) sampled by nvidia-smi every 0.1 s; reset per job."""

    def __init__(self):
        self.peak, self.stop = 0, threading.Event()
        self.ok = shutil.which("nvidia-smi") is not None
        if self.ok:
            threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stop.is_set():
            try:
                v = int(subprocess.check_output(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], timeout=5).split()[0])
                self.peak = max(self.peak, v)
            except Exception:
                pass
            time.sleep(0.1)

    def take(self):
        v, self.peak = self.peak, 0
        return v if self.ok else None


def breakdown(ev, wf):
    """Stage times from the (t, type, node, value, max) events of one job."""
    sampler = next((k for k, n in wf.items() if n["class_type"] == "SamplerCustomAdvanced"), None)
    nodes, cur, start = {}, None, 0.0
    starts = {}
    for t, typ, node, *_ in ev:
        if typ == "executing":
            if cur is not None:
                nodes[cur] = nodes.get(cur, 0.0) + t - start
            cur, start = node, t
            if node is not None:
                starts.setdefault(node, t)
    end_t = ev[-1][0] if ev else 0.0
    if cur is not None:
        nodes[cur] = nodes.get(cur, 0.0) + end_t - start
    prog = [t for t, typ, node, *_ in ev if typ == "progress" and node == sampler]
    stages = {}
    for nid, s in nodes.items():
        name = STAGE.get(wf.get(nid, {}).get("class_type"), "other")
        stages[name] = stages.get(name, 0.0) + s
    out = {"nodes_s": {f"{k} {wf.get(k, {}).get('class_type', '?')}": round(v, 3) for k, v in nodes.items()}, "stages_s": {k: round(v, 3) for k, v in stages.items()}}
    if sampler in starts and prog:
        t0 = starts[sampler]
        out["step_s"] = [round(b - a, 3) for a, b in zip([t0] + prog[:-1], prog)]
        out["sampler_tail_s"] = round(t0 + nodes[sampler] - prog[-1], 3)
    return out


async def run_job(url, wf, timeout):
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
            deadline = t0 + timeout
            while True:
                left = deadline - time.time()
                if left <= 0:
                    return {"error": "timeout", "events": ev[-20:]}
                try:
                    msg = await ws.receive(timeout=left)
                except asyncio.TimeoutError:
                    continue
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return {"error": "websocket closed", "events": ev[-20:]}
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                d = m.get("data", {}) if isinstance(m.get("data"), dict) else {}
                if d.get("prompt_id") not in (None, pid):
                    continue
                ev.append((time.time() - t0, m["type"], d.get("node"), d.get("value"), d.get("max")))
                if m["type"] == "execution_error":
                    return {"error": {k: d.get(k) for k in ("node_id", "node_type", "exception_message")}}
                if m["type"] == "execution_success" or (m["type"] == "executing" and d.get("node") is None):
                    break
    r = {"total_s": round(ev[-1][0], 3), "t_done": time.time()}
    r.update(breakdown(ev, wf))
    return r


def start_profile(lines):
    """The start's timeline from the stamped log: ComfyUI's own lines up to 'To see the GUI' with their
    second, and (under -X importtime) the 25 slowest imports by cumulative time, nested ones included."""
    timeline, imports = [], []
    for ln in lines:
        if not ln.startswith("[") or "] " not in ln:
            continue
        t, text = ln[1:].split("] ", 1)
        if text.startswith("import time:"):
            parts = text[len("import time:") :].split("|")
            if len(parts) == 3 and parts[1].strip().isdigit():
                imports.append((int(parts[1]), parts[2].rstrip()))
            continue
        if len(timeline) < 60 and not any("GUI" in x for _, x in timeline):
            timeline.append((float(t), text.strip()[:120]))
    imports.sort(reverse=True)
    return {"start_timeline": timeline, "slowest_imports_s": [(round(us / 1e6, 3), name) for us, name in imports[:25]]}


def drop_caches():
    """Drop the page cache so model files are read from the disk (root on Linux); False where refused."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def prefetch(paths, jobs=8, piece=64 << 20):
    """The shape of the toolkit's `models prefetch` (src/models/prefetch.ts), which start.sh runs beside
    ComfyUI: `jobs` readers over one queue of 64 MiB pieces of every file, bytes dropped. The device has
    no Node, so the bench reads the same pieces in the same order here. Returns (bytes, seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    t = time.time()
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    pieces = [(fd, o, min(piece, os.fstat(fd).st_size - o)) for fd in fds for o in range(0, os.fstat(fd).st_size, piece)]
    local = threading.local()

    def read(job):
        fd, off, n = job
        if not hasattr(local, "buf"):
            local.buf = bytearray(piece)
        return os.preadv(fd, [memoryview(local.buf)[:n]], off)

    try:
        with ThreadPoolExecutor(jobs) as pool:
            done = sum(pool.map(read, pieces))
    finally:
        for fd in fds:
            os.close(fd)
    return done, round(time.time() - t, 3)


class Comfy:
    def __init__(self, a, base, log_path, port, extra=(), importtime=False, env_extra=None):
        env = dict(
            os.environ, STEADYDANCER_TEXT_CACHE=str(base / "models" / "text_cache"), PYTHONUNBUFFERED="1", TORCHINDUCTOR_CACHE_DIR=str(base / "models" / ".cache" / "torchinductor")
        )  # as docker/start.sh
        env.update(env_extra or {})
        args = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"]
        args += ["--cpu"] if a.tiny else ["--use-pytorch-cross-attention"]  # start.sh's flag for fa3/fa3_fp8
        args += [*a.comfy_arg, *extra]
        if importtime:
            args = [args[0], "-X", "importtime", *args[1:]]
        self.log = open(log_path, "w")
        self.t_start = time.time()
        self.p = subprocess.Popen(args, cwd=a.comfyui, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, errors="replace")
        self.pump = threading.Thread(target=self._stamp, daemon=True)
        self.pump.start()
        self.url = f"http://127.0.0.1:{port}"
        while True:
            try:
                urllib.request.urlopen(self.url + "/system_stats", timeout=2).read()
                break
            except Exception:
                if self.p.poll() is not None:
                    raise SystemExit(f"ComfyUI exited; see {log_path}") from None
                if time.time() - self.t_start > 300:
                    raise SystemExit("ComfyUI did not answer in 300 s") from None
                time.sleep(0.1)
        self.ready_s = round(time.time() - self.t_start, 3)

    def _stamp(self):
        # each log line with the seconds since process start: the start's timeline (what the 17 s are)
        for ln in self.p.stdout:
            self.log.write(f"[{time.time() - self.t_start:8.3f}] {ln}")
            self.log.flush()

    def close(self):
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.pump.join(10)
        self.log.close()


def main():
    ap = argparse.ArgumentParser()
    for k in ("comfyui", "official", "pack", "workflows", "samples", "out"):
        ap.add_argument(f"--{k}", required=True)
    ap.add_argument("--models", help="a model set made before (skips making one)")
    ap.add_argument("--port", type=int, default=8188)
    ap.add_argument("--budget", type=float, default=1e9, help="seconds this script may run; the restart is skipped if short")
    ap.add_argument("--restart-need", type=float, default=60, help="seconds the restart phase needs")
    ap.add_argument("--restart", help="workflow name (stem) to run in a second, restarted process")
    ap.add_argument("--job-timeout", type=float, default=240)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--comfy-arg", action="append", default=[], help="one more ComfyUI argument (repeatable), e.g. --comfy-arg=--disable-api-nodes")
    ap.add_argument(
        "--start-probes",
        default="",
        help="after the jobs, start ComfyUI once per probe and stop it when it answers: 'plain', 'importtime' (python -X importtime), 'nopyc' (no bytecode), or ComfyUI flags joined by '+' (e.g. --disable-api-nodes)",
    )
    ap.add_argument(
        "--restart-variants",
        default="base",
        help="comma list: one restart phase each; 'base' = as before; 'prefetch' = the model files read by 8 readers (the shape of `models prefetch`) from the process start on; 'prefetch-ready' = from when ComfyUI answers (what start.sh does)",
    )
    ap.add_argument("--read-threads", default="0,8", help="after the jobs: bench/model_read.py with these thread counts ('' = skip)")
    a = ap.parse_args()
    t_script = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sink = open(out / "jobs.jsonl", "a")

    def emit(rec):
        sink.write(json.dumps(rec) + "\n")
        sink.flush()
        print(json.dumps(rec)[:1500], flush=True)

    base = Path("/tmp/sdjob")
    shutil.rmtree(base, ignore_errors=True)
    for d in ("custom_nodes", "input", "output", "user"):
        (base / d).mkdir(parents=True)
    os.symlink(Path(a.pack).resolve(), base / "custom_nodes" / "comfyui-steadydancer")
    for f in Path(a.samples).iterdir():
        shutil.copy(f, base / "input" / f.name)
    wfs = sorted(Path(a.workflows).glob("*.json"))
    restart = [w for w in wfs if w.stem == a.restart]
    wfs = [w for w in wfs if w.stem != a.restart]
    env_rec = {"phase": "env", "python": sys.version.split()[0]}
    if shutil.which("nvidia-smi"):
        env_rec["gpu"] = subprocess.check_output(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]).decode().strip()
    if a.models:
        os.symlink(Path(a.models).resolve(), base / "models")
    else:
        t = time.time()
        neg = json.loads(wfs[0].read_text())["9"]["inputs"]["negative_prompt"]
        pos = json.loads(wfs[0].read_text())["9"]["inputs"]["positive_prompt"]
        cmd = [
            sys.executable,
            str(Path(a.pack) / "tests" / "fixtures" / "make_tiny_models.py"),
            str(base / "models"),
            "--comfyui",
            a.comfyui,
            "--official",
            a.official,
            "--text-cache",
            str(base / "models" / "text_cache"),
            "--prompt",
            pos,
            "--prompt",
            neg,
        ]
        if not a.tiny:
            cmd += ["--full-size", "--device", "cuda"]
        subprocess.check_call(cmd, stdout=subprocess.DEVNULL)
        env_rec["make_models_s"] = round(time.time() - t, 1)
    env_rec["model_bytes"] = {str(p.relative_to(base / "models")): p.stat().st_size for p in (base / "models").rglob("*.safetensors")}
    emit(env_rec)
    peak = Peak()

    def phase(name, jobs, log_name, prefetch_models=False):
        dropped = False if a.tiny else drop_caches()  # never on a shared CPU host
        pre = {}
        m = base / "models"
        files = [p for d in ("vae", "clip_vision", "diffusion_models", "loras") for p in sorted((m / d).glob("*.safetensors"))]
        th = threading.Thread(target=lambda: pre.update(zip(("bytes", "seconds"), prefetch(files))), daemon=True)
        if prefetch_models == "start":
            th.start()
        c = Comfy(a, base, out / log_name, a.port)
        if prefetch_models == "ready":  # start.sh: `models prefetch --after-comfy http://127.0.0.1:PORT`
            th.start()
        emit({"phase": name, "event": "ready", "ready_s": c.ready_s, "page_cache_dropped": dropped})
        try:
            for i, w in enumerate(jobs):
                wf = json.loads(w.read_text())
                peak.take()
                r = asyncio.run(run_job(c.url, wf, a.job_timeout))
                rec = {"phase": name, "job": w.stem, "peak_vram_mib": peak.take(), **r}
                if i == 0 and "t_done" in r:
                    rec["cold_start_s"] = round(r["t_done"] - c.t_start, 3)  # process start → first job done
                rec.pop("t_done", None)
                emit(rec)
                if "error" in r:
                    break
        finally:
            c.close()
        if prefetch_models:
            th.join()  # the job did not wait for it (start.sh does not): its own figures, after the job
            emit({"phase": name, "event": "prefetch", **pre})
        speed = [
            ln.strip() for ln in (out / log_name).read_text(errors="replace").splitlines() if "steadydancer" in ln.lower() and any(s in ln for s in ("speed", "attention", "compile", "fp8", "fall"))
        ]
        text = (out / log_name).read_text(errors="replace").splitlines()
        # ComfyUI's own start report: "Import times for custom nodes:" then "  0.8 seconds: path" lines
        imports = [ln.strip() for ln in text if "seconds" in ln and ("custom_nodes" in ln or "comfy_extras" in ln or "comfy_api_nodes" in ln)]
        emit({"phase": name, "event": "log", "speed_lines": speed[:12], "import_times": imports[:40], **start_profile(text)})

    phase("first-process", wfs, "comfyui.log")
    left = a.budget - (time.time() - t_script)
    for variant in [v for v in a.restart_variants.split(",") if v] if restart else []:
        if variant not in ("base", "prefetch", "prefetch-ready"):
            raise SystemExit(f"--restart-variants: unknown {variant!r} (base, prefetch, prefetch-ready)")
        name = "restart-warm-compile-cache" + ("" if variant == "base" else f"-{variant}")
        if a.budget - (time.time() - t_script) > a.restart_need:
            phase(name, restart, f"comfyui-restart-{variant}.log", prefetch_models={"prefetch": "start", "prefetch-ready": "ready"}.get(variant, False))
        else:
            emit({"phase": name, "skipped": f"{a.budget - (time.time() - t_script):.0f} s left of the budget"})
    for probe in [p for p in a.start_probes.split(",") if p]:
        if a.budget - (time.time() - t_script) < 40:
            emit({"phase": "start-probe", "probe": probe, "skipped": "budget"})
            continue
        flags = [] if probe in ("plain", "importtime", "nopyc") else probe.split("+")
        dropped = False if a.tiny else drop_caches()
        log_name = f"comfyui-probe-{probe.strip('-').replace('+', '_')}.log"
        # nopyc: no bytecode anywhere (an empty PYTHONPYCACHEPREFIX: every module compiled from source,
        # as in a container from an image whose installs wrote no .pyc)
        env_extra = {"PYTHONPYCACHEPREFIX": str(Path("/tmp") / f"pyc-empty-{uuid.uuid4().hex}")} if probe == "nopyc" else None
        c = Comfy(a, base, out / log_name, a.port, extra=flags, importtime=probe == "importtime", env_extra=env_extra)
        c.close()
        prof = start_profile((out / log_name).read_text(errors="replace").splitlines())
        emit({"phase": "start-probe", "probe": probe, "ready_s": c.ready_s, "page_cache_dropped": dropped, **prof})
    left = a.budget - (time.time() - t_script)
    model = next(iter(sorted((base / "models" / "diffusion_models").glob("*.safetensors"))), None)
    if a.read_threads and model is not None and not a.tiny and left > 70:
        # the loader's cold read of the checkpoint: ComfyUI's mmap reader vs the parallel one (bench/model_read.py)
        rd = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("model_read.py")), "--comfyui", a.comfyui, "--pack", a.pack, "--file", str(model), "--threads", a.read_threads],
            capture_output=True,
            text=True,
        )
        for ln in rd.stdout.splitlines():
            if ln.startswith("{"):
                emit({"phase": "checkpoint-read", **json.loads(ln)})
        if rd.returncode:
            emit({"phase": "checkpoint-read", "error": rd.stderr[-600:]})
    vids = sorted((base / "output").rglob("*.mp4"))
    probe = []
    for v in vids:
        try:
            import av

            with av.open(str(v)) as f:
                st = f.streams.video[0]
                probe.append({"file": v.name, "codec": st.codec_context.name, "w": st.width, "h": st.height, "frames": sum(1 for _ in f.decode(st))})
        except Exception as e:  # noqa: BLE001 - a probe failure is reported, not fatal
            probe.append({"file": v.name, "probe_error": str(e)})
    emit({"phase": "outputs", "mp4": probe, "script_s": round(time.time() - t_script, 1)})


if __name__ == "__main__":
    main()
