"""The plan layer: every derived fact about a core, between the network format and the generator.

``CorePlan.build(network, lanes, large=...)`` lays out each layer's synapses, sizes its widths
and memories and fixes where its synapses live, once; the generator, the compiler, the fit check,
the energy model, the board protocol and the co-simulation all read that one frozen plan.
"""

from .core import (CYCLE_BITS, MAX_LANES, QUEUE_DEPTH, TIMESTEP_BITS, CorePlan, LayerPlan,
                   PlanError, check_lanes, top_name)
from .cycles import BOUND_FORMULA, SERIAL_BOUND_FORMULA, cycle_bounds
from .layout import WORDS_SLACK, Layout, SynapseLayout
from .memory import (SPRAM_ADDR_BITS, SPRAM_DEPTH, SPRAM_WIDTH, MemoryKind, MemorySpec,
                     Placement, rom_slice_bits, spram_tiles)
from .report import CoreReport, LayerReport, core_report
from .widths import (accumulator_bits, addr_bits, bits_for, membrane_bits, per_neuron_bits,
                     signed_bits_for)

__all__ = [
    "CorePlan", "LayerPlan", "PlanError", "check_lanes", "top_name", "MAX_LANES", "QUEUE_DEPTH",
    "TIMESTEP_BITS", "CYCLE_BITS", "cycle_bounds", "BOUND_FORMULA", "SERIAL_BOUND_FORMULA",
    "Layout", "SynapseLayout", "WORDS_SLACK",
    "MemoryKind", "MemorySpec", "Placement", "SPRAM_DEPTH", "SPRAM_WIDTH", "SPRAM_ADDR_BITS",
    "spram_tiles", "rom_slice_bits", "CoreReport", "LayerReport", "core_report",
    "accumulator_bits", "addr_bits",
    "bits_for", "membrane_bits", "per_neuron_bits", "signed_bits_for",
]
