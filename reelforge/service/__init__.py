"""The service layer: the generation rules every dialect shares.

A dialect router parses its wire format into a `Submission`, calls `Generations`, and renders
the `GenerationView` it gets back; no job logic lives in a router.
"""

from __future__ import annotations

from reelforge.service.generations import Generations, GenerationView, Submission
from reelforge.service.sweeper import RetentionSweeper

__all__ = ["GenerationView", "Generations", "RetentionSweeper", "Submission"]
