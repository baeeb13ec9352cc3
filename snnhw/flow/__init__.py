"""``snnhw flow``: from data to verified hardware in one command, and the report."""

from .flow import STEP_NAMES

__all__ = ["STEP_NAMES"]
