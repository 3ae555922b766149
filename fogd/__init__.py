"""fogd: the control tower of a fog deployment."""

from fogd.plugins.markers import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
