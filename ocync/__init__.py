"""ocync: mirror OCI container images between registries at scale."""

from ocync.errors import (
    ConfigError,
    IntegrityError,
    OcyncError,
    RegistryError,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "IntegrityError",
    "OcyncError",
    "RegistryError",
    "TransportError",
    "__version__",
]
