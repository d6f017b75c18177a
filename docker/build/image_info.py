#!/usr/bin/env python3
"""Record what the image holds in /opt/steadydancer/image.json: Python, torch and its CUDA,
the attention backends that import, ComfyUI's commit, the node packs installed and omitted.
`steadydancer build` reads it back (docker run ... cat) for its report; start.sh reads the
attention part. Runs at the end of the build: --write FILE; or --print to show it."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

HOME = Path("/opt/steadydancer")


def try_import(mod: str) -> str | None:
    try:
        m = importlib.import_module(mod)
        return str(getattr(m, "__version__", "present"))
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return None


def read_json(p: Path):
    return json.loads(p.read_text()) if p.exists() else None


def collect() -> dict:
    import torch

    status = HOME / "flash-attn.status"
    fa3_status = HOME / "fa3.status"
    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "attention": {
            "sdpa": True,
            "xformers": try_import("xformers"),
            "flash_attn": try_import("flash_attn"),
            "sageattention": try_import("sageattention"),
            "fa3": try_import("fa3_fwd_interface"),
        },
        "flashAttnStatus": status.read_text().strip() if status.exists() else None,
        "fa3Status": fa3_status.read_text().strip() if fa3_status.exists() else None,
        "comfyui": read_json(HOME / "comfyui.json"),
        "packs": read_json(HOME / "packs.json"),
    }


def main(argv: list[str]) -> int:
    info = collect()
    text = json.dumps(info, indent=2) + "\n"
    if len(argv) == 2 and argv[0] == "--write":
        Path(argv[1]).write_text(text)
        print("image_info: " + json.dumps({k: info[k] for k in ("python", "torch", "cuda", "attention")}))
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
