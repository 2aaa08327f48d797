"""Shared fixtures.

Tests that need the real ``carla`` client wheel take the ``carla`` fixture. Without the
wheel they skip on a developer's machine, but fail in CI (``CI`` set) or wherever
``CARLA4AGT_REQUIRE_CARLA=1``: the tag tables and presets must be checked against it.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

# One intra-op thread, here and in every process a test starts: torch's OpenMP threads
# oversubscribe a 2-core machine (one training test took 68.7 s instead of 1.8 s).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

try:  # Importing torchvision (triton) AFTER Mesa's llvmpipe is loaded crashes the process
    import torch
    import torchvision  # noqa: F401  (LLVM clash); imported first, both work together.

    torch.set_num_threads(1)
except ImportError:
    pass


def _carla_required() -> bool:
    return any(os.environ.get(v, "").lower() not in ("", "0", "false")
               for v in ("CI", "CARLA4AGT_REQUIRE_CARLA"))


@pytest.fixture(scope="session")
def carla() -> ModuleType:
    try:
        import carla as carla_module
    except ImportError as exc:
        if _carla_required():
            pytest.fail(f"The carla wheel is required here but cannot be imported: {exc}. "
                        "Install it with pip install 'carla4agt[carla]'.")
        pytest.skip("carla wheel not installed (pip install 'carla4agt[carla]')")
    return carla_module


SMALL = (256, 128)  # small renders keep the suite fast; the code paths are the same


@pytest.fixture(scope="session")
def small_raw(tmp_path_factory):
    """Three builtin layouts x four appearances rendered into a raw folder (once)."""
    from generator.runner import generate
    from generator.weather import resolve_weathers

    out = tmp_path_factory.mktemp("raw")
    generate(out, layouts=3, presets=resolve_weathers("all"), size=SMALL, seed=7,
             progress=False)
    return out
