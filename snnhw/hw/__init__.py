"""Amaranth 0.5 hardware generator: the neuromorphic core and its parts."""

from .core import Core
from .engine import EventLayout, LayerEngine, ProbeSignature
from .layout import LayerLayout
from .lif import LIFUnit

__all__ = ["Core", "EventLayout", "LayerEngine", "LayerLayout", "LIFUnit", "ProbeSignature"]
