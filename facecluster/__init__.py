"""facecluster: find the people in a photo archive."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facecluster")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
