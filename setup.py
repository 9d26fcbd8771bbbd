"""The wheel carries the checkout's `research/` and `agents/` as package data under
`epyc_agent/data/` (found by `epyc_agent.shipped`), copied at build time so the checkout's
files stay their one source. Everything else is in pyproject.toml."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = {"research": (".yaml", ".yml"), "agents": (".md",)}


class BuildWithDefaults(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout itself
            return
        for top, suffixes in SHIPPED.items():
            for folder, _dirs, files in os.walk(top):
                for name in sorted(f for f in files if f.endswith(suffixes)):
                    target = os.path.join(self.build_lib, "epyc_agent", "data", folder)
                    self.mkpath(target)
                    self.copy_file(os.path.join(folder, name), os.path.join(target, name))


setup(cmdclass={"build_py": BuildWithDefaults})
