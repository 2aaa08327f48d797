"""The stand-in uses the real wheel's value types: without it, a test module that imports
the stand-in is skipped on a developer's machine and fails in CI (as the ``carla`` fixture
of tests/conftest.py does)."""

from __future__ import annotations

import os
import sys


def require_wheel() -> None:
    try:
        import carla  # noqa: F401
    except ImportError:
        pass
    else:
        return
    required = any(os.environ.get(v, "").lower() not in ("", "0", "false")
                   for v in ("CI", "CARLA4AGT_REQUIRE_CARLA"))
    message = ("carla wheel not installed (pip install 'carla4agt[carla]'): the CARLA "
               "stand-in needs its value types")
    if "pytest" not in sys.modules:
        raise ImportError(message)
    import pytest

    if required:
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)
