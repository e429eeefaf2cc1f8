"""reelforge: a self-hosted video-generation server speaking the AI/ML API video protocol."""

__version__ = "0.1.0"
__all__ = ["__version__"]
