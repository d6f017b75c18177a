"""Reusable setup for tests that import ComfyUI core from the source cache, and our node pack.

ComfyUI's modules expect its checkout on sys.path; ``comfy.cli_args`` only parses argv when
``comfy.options.enable_args_parsing()`` was called (ComfyUI's main.py does; we never do), so
pytest's own argv is left alone. Use ``setup_comfy(path)`` then ``load_pack()``.
"""

import importlib.util
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent
PACK_MODULE = "comfyui_steadydancer"


def setup_comfy(comfy_dir):
    comfy_dir = str(comfy_dir)
    if comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)
    import torch
    import comfy.options  # noqa: F401  (args parsing stays disabled: defaults only)
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True  # must be set before comfy.model_management is imported
    import comfy.model_management  # noqa: F401

    return comfy_dir


def load_pack():
    """Import the node pack as package ``comfyui_steadydancer`` (its folder name has a dash)."""
    if PACK_MODULE in sys.modules:
        return sys.modules[PACK_MODULE]
    spec = importlib.util.spec_from_file_location(PACK_MODULE, PACK_DIR / "__init__.py", submodule_search_locations=[str(PACK_DIR)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE] = mod
    spec.loader.exec_module(mod)
    return mod
