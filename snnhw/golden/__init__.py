"""The bit-exact integer golden model (DESIGN.md §2)."""

from .model import NEURON_MODELS, lif_step, simulate

__all__ = ["NEURON_MODELS", "lif_step", "simulate"]
