#!/usr/bin/env python3
"""Put the pinned sources of docker/custom-nodes.lock.json in place inside the image build.

    install_sources.py comfyui --lock L --staged DIR --dest /opt/ComfyUI
    install_sources.py packs   --lock L --staged DIR --dest /opt/ComfyUI/custom_nodes \
        --select all|none|A,B --requirements-out FILE --manifest FILE

A source comes from the staged cache copy (DIR/<name>@<commit>, prepared by
`steadydancer build` from the content-addressed source cache) when present, else it is cloned
from its repo and checked out at the pinned commit (the commit is verified either way).
`packs` also writes one requirements file for every selected pack that asks for it, rewritten
by the rules below, and a manifest naming installed and omitted packs.

Requirement rewrites (why):
  - opencv-python / opencv-python-headless pins -> opencv-python-headless (no GUI in a server
    image; one cv2 distribution instead of several that overwrite each other's files);
  - torch / torchvision / torchaudio / xformers lines are dropped (the image pins them earlier;
    a pack must not move them);
  - "git+" / URL requirements are dropped with a note (GitHub is not reachable from every build
    host, and an unpinned URL is not reproducible).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

PINNED_ELSEWHERE = {"torch", "torchvision", "torchaudio", "xformers"}
OPENCV_NAMES = {"opencv-python", "opencv-python-headless"}


def log(msg: str) -> None:
    print(f"install_sources: {msg}", flush=True)


def req_name(line: str) -> str:
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return m.group(1).lower().replace("_", "-") if m else ""


def rewrite_requirements(text: str, pack: str) -> tuple[list[str], list[str]]:
    """Returns (requirement lines to install, notes about what was changed)."""
    out: list[str] = []
    notes: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-", "git+", "http://", "https://")) or "@ git+" in line or "://" in line:
            notes.append(f"{pack}: dropped '{line}' (URL/option requirement)")
            continue
        name = req_name(line)
        if name in PINNED_ELSEWHERE:
            notes.append(f"{pack}: '{line}' left to the image's own pin")
            continue
        if name in OPENCV_NAMES:
            if name != "opencv-python-headless" or line != "opencv-python-headless":
                notes.append(f"{pack}: '{line}' -> opencv-python-headless")
            out.append("opencv-python-headless")
            continue
        out.append(line)
    return out, notes


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, text=True, capture_output=True).stdout.strip()


def place(name: str, repo: str, commit: str, staged: Path, dest: Path) -> dict:
    """Copy the staged source or clone it; returns a record of where it came from."""
    src = staged / f"{name}@{commit}"
    if dest.exists():
        shutil.rmtree(dest)
    if src.is_dir():
        meta_file = src / ".steadydancer-source.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        if meta.get("commit", commit) != commit:
            raise SystemExit(f"staged {src} says commit {meta.get('commit')}, the lock pins {commit}")
        shutil.copytree(src, dest, symlinks=True)
        (dest / ".steadydancer-source.json").unlink(missing_ok=True)
        log(f"{name}@{commit[:12]} from the source cache")
        return {"name": name, "repo": repo, "commit": commit, "from": "cache", "missingFiles": len(meta.get("missing", []))}
    log(f"{name}@{commit[:12]} not staged: cloning {repo}")
    dest.mkdir(parents=True)
    git("init", "-q", cwd=dest)
    git("remote", "add", "origin", repo, cwd=dest)
    try:
        git("fetch", "-q", "--depth", "1", "origin", commit, cwd=dest)
    except subprocess.CalledProcessError:
        # Servers that refuse fetching a bare commit: full fetch, then check out.
        git("fetch", "-q", "origin", cwd=dest)
    git("checkout", "-q", "--detach", commit, cwd=dest)
    head = git("rev-parse", "HEAD", cwd=dest)
    if head != commit:
        raise SystemExit(f"{name}: HEAD is {head} after checkout, the lock pins {commit}")
    shutil.rmtree(dest / ".git")
    return {"name": name, "repo": repo, "commit": commit, "from": "clone", "missingFiles": 0}


def select(nodes: list[dict], selection: str) -> tuple[list[dict], list[dict]]:
    sel = selection.strip()
    if sel in ("", "all"):
        return list(nodes), []
    if sel == "none":
        return [], list(nodes)
    want = [s.strip() for s in sel.split(",") if s.strip()]
    known = {n["name"] for n in nodes}
    unknown = [w for w in want if w not in known]
    if unknown:
        raise SystemExit(f"NODE_PACKS names unknown pack(s) {unknown}; the lock has {sorted(known)}")
    return [n for n in nodes if n["name"] in want], [n for n in nodes if n["name"] not in want]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["comfyui", "packs"])
    ap.add_argument("--lock", required=True, type=Path)
    ap.add_argument("--staged", required=True, type=Path)
    ap.add_argument("--dest", required=True, type=Path)
    ap.add_argument("--select", default="all")
    ap.add_argument("--requirements-out", type=Path)
    ap.add_argument("--manifest", type=Path)
    ap.add_argument("--comfyui-ref", default="")
    a = ap.parse_args(argv)
    lock = json.loads(a.lock.read_text())

    if a.what == "comfyui":
        c = lock["comfyui"]
        commit = a.comfyui_ref or c["commit"]
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise SystemExit(f"COMFYUI_REF must be a full 40-hex commit, got '{commit}'")
        rec = place(c["name"], c["repo"], commit, a.staged, a.dest)
        if a.manifest:
            a.manifest.parent.mkdir(parents=True, exist_ok=True)
            a.manifest.write_text(json.dumps(rec, indent=2) + "\n")
        return 0

    chosen, omitted = select(lock["nodes"], a.select)
    a.dest.mkdir(parents=True, exist_ok=True)
    installed, reqs, notes = [], [], []
    for n in chosen:
        rec = place(n["name"], n["repo"], n["commit"], a.staged, a.dest / n["name"])
        installed.append(rec)
        rfile = a.dest / n["name"] / "requirements.txt"
        if n.get("requirements", True) and rfile.exists():
            lines, why = rewrite_requirements(rfile.read_text(), n["name"])
            reqs += [f"# {n['name']}"] + lines
            notes += why
    for note in notes:
        log(note)
    if omitted:
        log("omitted node packs: " + ", ".join(n["name"] for n in omitted))
    if a.requirements_out:
        a.requirements_out.write_text("\n".join(reqs) + "\n")
    if a.manifest:
        a.manifest.parent.mkdir(parents=True, exist_ok=True)
        a.manifest.write_text(
            json.dumps(
                {
                    "installed": installed,
                    "omitted": [{"name": n["name"], "commit": n["commit"]} for n in omitted],
                    "requirementNotes": notes,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
