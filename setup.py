"""Package discovery (everything else is in pyproject.toml).

Code packages are found, never listed by hand, so a new subpackage ships in the wheel. The
weather presets live in the top-level ``configs/`` folder and ship as the data package
``carla4agt_configs``: a folder mapping that pyproject's ``packages.find`` cannot express.
"""

from setuptools import find_packages, setup

CODE = ["carla4agt", "carla4agt_data", "generator", "loaders", "training"]

setup(
    packages=find_packages(include=[p for name in CODE for p in (name, f"{name}.*")])
    + ["carla4agt_configs"],
    package_dir={"carla4agt_configs": "configs"},
)
