"""Shared fixtures.

Tests that need the real ``carla`` client wheel take the ``carla`` fixture. Without the
wheel they skip on a developer's machine, but fail in CI (``CI`` set) or wherever
``CARLA4AGT_REQUIRE_CARLA=1``: the tag tables and presets must be checked against it.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest


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
