"""SteadyDancer for ComfyUI: native SteadyDancer on ComfyUI core's Wan model, pose, guidance.

Every module named ``nodes_*.py`` in this package contributes its ``NODE_CLASS_MAPPINGS`` and
``NODE_DISPLAY_NAME_MAPPINGS``; ComfyUI imports this package and sees the union.
"""
import importlib
import logging
import pkgutil

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

_log = logging.getLogger("steadydancer")

# pytest imports this file as a plain module named "__init__" (the folder name has a hyphen, so
# it is not a package to pytest) to look for package fixtures: there is no __path__ then and
# nothing to register.
_pkg_path = globals().get("__path__") if __package__ else None

for _info in sorted(pkgutil.iter_modules(_pkg_path), key=lambda m: m.name) if _pkg_path else []:
    if not _info.name.startswith("nodes_"):
        continue
    _mod = importlib.import_module(f"{__name__}.{_info.name}")
    for _k, _v in getattr(_mod, "NODE_CLASS_MAPPINGS", {}).items():
        if _k in NODE_CLASS_MAPPINGS:
            raise RuntimeError(f"steadydancer: node type {_k} is defined twice ({_info.name})")
        NODE_CLASS_MAPPINGS[_k] = _v
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(_mod, "NODE_DISPLAY_NAME_MAPPINGS", {}))

_log.info("steadydancer: %d node types", len(NODE_CLASS_MAPPINGS))
