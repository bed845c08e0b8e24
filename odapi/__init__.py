"""odapi: train TensorFlow object detectors on your own labelled images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("odapi")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
