"""The bit-exact integer golden model (DESIGN.md §2)."""

from .model import lif_step, simulate

__all__ = ["lif_step", "simulate"]
