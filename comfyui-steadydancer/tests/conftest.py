"""Shared fixtures: pinned upstream sources from the project's source cache, loud skips."""

import os
import sys
from pathlib import Path

import pytest

COMFYUI_COMMIT = "a125cd84b054a57729b5eecab930ca9408719832"
OFFICIAL_COMMIT = "866a7219e74923d9486ab611cd981b15e5d959e5"

PACK_DIR = Path(__file__).resolve().parent.parent


def sources_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "steadydancer" / "sources"


def cached_source(name: str, commit: str):
    p = sources_dir() / f"{name}@{commit}"
    return p if p.is_dir() else None


def _seed_hint(name: str, commit: str) -> str:
    return f"{name}@{commit[:12]} is not in the source cache ({sources_dir()}); seed it with `steadydancer sources fetch` (or `--from <git mirror>`)"


@pytest.fixture(scope="session")
def comfyui_source():
    """ComfyUI core at the pinned commit, put on sys.path (skips loudly when not cached)."""
    p = cached_source("ComfyUI", COMFYUI_COMMIT)
    if p is None:
        pytest.skip(_seed_hint("ComfyUI", COMFYUI_COMMIT))
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
    # as ComfyUI's main.py does before nodes.py puts comfy/ first on sys.path (where comfy/utils.py
    # would then shadow this package for server.py and the extras that import it)
    import utils.install_util  # noqa: F401

    return p


@pytest.fixture(scope="session")
def official_source():
    """The official SteadyDancer code at the pinned commit (skips loudly when not cached)."""
    p = cached_source("SteadyDancer", OFFICIAL_COMMIT)
    if p is None:
        pytest.skip(_seed_hint("SteadyDancer", OFFICIAL_COMMIT))
    return p


@pytest.fixture(scope="session")
def comfy(comfyui_source):
    """ComfyUI core importable (from the cache) and our pack loaded as ``comfyui_steadydancer``."""
    from comfy_env import load_pack, setup_comfy

    setup_comfy(comfyui_source)
    return load_pack()
