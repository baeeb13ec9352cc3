"""The deployable integer network: the hand-off between training and hardware (DESIGN.md §1)."""

from .format import Layer, Network, Neuron, Reset, load, save

__all__ = ["Layer", "Network", "Neuron", "Reset", "load", "save"]
