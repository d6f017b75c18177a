"""SteadyDancer for ComfyUI: native SteadyDancer on ComfyUI core's Wan model, pose, guidance, sampler.

Registration is ComfyUI's v3 extension API: ``comfy_entrypoint()`` returns a ``ComfyExtension``
whose ``get_node_list()`` is every ``NODES`` list of the ``nodes_*.py`` modules (all nodes are
``io.ComfyNode`` schemas). ComfyUI's loader (``nodes.load_custom_node``) takes this path when a
pack has no ``NODE_CLASS_MAPPINGS``, which is why there is none here: with both, the v1 mapping
would win and the entrypoint would never be called. Importing the package also adds the
``flow_unipc_bh2`` sampler and the ``flow_unipc_official`` scheduler to ComfyUI's lists
(``flow_unipc.py``), so KSampler, KSamplerSelect and BasicScheduler offer them.
"""

import importlib
import logging
import pkgutil

_log = logging.getLogger("steadydancer")

# pytest imports this file as a plain module named "__init__" (the folder name has a hyphen, so
# it is not a package to pytest) to look for package fixtures: there is no __path__ then and
# nothing to register.
_pkg_path = globals().get("__path__") if __package__ else None

NODES = []

if _pkg_path:
    from comfy_api.latest import ComfyExtension

    importlib.import_module(f"{__name__}.flow_unipc").register()
    for _info in sorted(pkgutil.iter_modules(_pkg_path), key=lambda m: m.name):
        if _info.name.startswith("nodes_"):
            NODES.extend(importlib.import_module(f"{__name__}.{_info.name}").NODES)

    class SteadyDancerExtension(ComfyExtension):
        async def get_node_list(self):
            return list(NODES)

    async def comfy_entrypoint() -> SteadyDancerExtension:
        return SteadyDancerExtension()

    _log.info("steadydancer: %d node types", len(NODES))
