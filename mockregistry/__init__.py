"""mockregistry: a real OCI Distribution registry (trio + h11) with GHCR's behaviours.

It never imports ocync: it is an independent witness the engine is tested against.
"""

from .quirks import MockOptions
from .server import MockRegistry, serve_mock

__all__ = ["MockOptions", "MockRegistry", "serve_mock"]
