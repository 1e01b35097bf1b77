"""Package discovery for setuptools; everything else lives in pyproject.toml.

One distribution, one namespace ``elang``: ``elang/`` is the core, ``client/`` ships as
``elang.client`` and ``export/`` as ``elang.export``. Every folder with an ``__init__.py`` under
them ships, found here, so a new subpackage cannot be left out of the install
(tests/integration/test_packaging.py builds the wheel and imports every module from it).
"""

from setuptools import find_packages, setup

ROOTS = {"elang": "elang", "elang.client": "client", "elang.export": "export"}


def packages() -> list[str]:
    found = []
    for package, folder in ROOTS.items():
        found += [package, *(f"{package}.{sub}" for sub in find_packages(folder))]
    return found


setup(packages=packages(), package_dir=ROOTS)
