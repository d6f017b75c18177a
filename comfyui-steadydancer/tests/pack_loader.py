"""Import the node pack's modules in tests without running its ``__init__`` (which registers
every node and so needs ComfyUI on the path). The pack directory has a hyphen in its name, so it
is mounted under the package name ``steadydancer_pack``."""

import importlib
import sys
import types
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent
PKG = "steadydancer_pack"


def pack_module(name: str):
    if PKG not in sys.modules:
        pkg = types.ModuleType(PKG)
        pkg.__path__ = [str(PACK_DIR)]
        sys.modules[PKG] = pkg
    return importlib.import_module(f"{PKG}.{name}")
