"""Compile odapi's protos whenever the package is built (`pip install .`, image builds)."""

import runpy

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithProtos(build_py):
    def run(self):
        runpy.run_path("odapi/protos/compile.py")["compile_protos"]()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
