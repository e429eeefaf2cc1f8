"""Engines turn a `GenerationSpec` into frames; the registry says which engine serves a model."""

from reelforge.engines.base import Clip, Engine, OnStep
from reelforge.engines.registry import ModelEntry, Registry, RegistryError, engine_class

__all__ = ["Clip", "Engine", "ModelEntry", "OnStep", "Registry", "RegistryError", "engine_class"]
