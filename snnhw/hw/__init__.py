"""Amaranth 0.5 hardware generator: the neuromorphic core and its parts, built from a plan."""

from .core import Core
from .engine import EventLayout, LayerEngine, ProbeSignature
from .lif import LIFUnit

__all__ = ["Core", "EventLayout", "LayerEngine", "LIFUnit", "ProbeSignature"]
