"""meshrelease: ship MeshNet checkpoints as verified, versioned releases."""

__version__ = "0.1.0"
