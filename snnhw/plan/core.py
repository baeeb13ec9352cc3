"""The plan of a core: every derived fact about its hardware, computed once, frozen.

A :class:`CorePlan` is built from (network, lanes, where each layer's synapses live) and handed to
everything that needs to know what the core looks like: the generator (:mod:`snnhw.hw`), the
compiler and its report, the fit check, the energy model, the board protocol and the
co-simulation. Nobody recomputes layouts or widths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ..errors import ParameterError
from ..network.format import Layer, Network
from .balance import balanceable, lane_order, permuted
from .inputs import compacted, core_inputs, kept_inputs
from .layout import WORDS_SLACK, Layout, SynapseLayout
from .memory import STORED, MemoryKind, MemorySpec, Placement, rom_slice_bits
from .widths import accumulator_bits, addr_bits, membrane_bits, per_neuron_bits

__all__ = ["MAX_LANES", "QUEUE_DEPTH", "TIMESTEP_BITS", "CYCLE_BITS", "PlanError", "LayerPlan",
           "CorePlan", "check_lanes", "top_name"]

MAX_LANES = 64
#: Depth of each layer's output event queue.
QUEUE_DEPTH = 16
#: Width of the core's ``timesteps`` port: the most timesteps a sample can have is 2**16 - 1.
TIMESTEP_BITS = 16
#: Width of the core's cycle counter.
CYCLE_BITS = 32


class PlanError(ParameterError):
    """A parameter of the plan that the core cannot have; the message names the parameter."""


def check_lanes(lanes: object) -> int:
    """Return ``lanes`` if it is a lane count the core can have, else raise naming it."""
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= MAX_LANES:
        raise PlanError("lanes", f"expected an integer in 1..{MAX_LANES}, got {lanes!r}")
    return lanes


def check_network(network: Network) -> None:
    """Raise naming the field if ``network`` has what its format allows but the core cannot
    have: more timesteps than the core's counter holds, a name too long for a file name.
    (Every neuron of format versions 1 and 2 has a hardware unit: :class:`snnhw.hw.LIFUnit`.)"""
    longest = 64  # names become file names (mem/<layer>.*.hex) and Verilog identifiers
    if network.timesteps > (1 << TIMESTEP_BITS) - 1:
        raise PlanError("timesteps", f"expected at most {(1 << TIMESTEP_BITS) - 1} (the core "
                                     f"counts timesteps in {TIMESTEP_BITS} bits), got "
                                     f"{network.timesteps}")
    names = [("name", network.name)] + [(f"layers[{number}].name", layer.name)
                                        for number, layer in enumerate(network.layers)]
    for field, name in names:
        if len(name) > longest:
            raise PlanError(field, f"expected at most {longest} characters (it names "
                                   f"files and Verilog modules), got {len(name)}: "
                                   f"{name[:20]!r}...")


def _check_layouts(network: Network, layouts: Mapping[str, Layout]) -> dict[str, Layout]:
    """``layouts`` if it names layers of ``network`` and layouts they allow, else raise."""
    names = [layer.name for layer in network.layers]
    unknown = sorted(set(layouts) - set(names))
    if unknown:
        raise PlanError("layouts", f"{', '.join(unknown)} is not a layer of {network.name} "
                                   f"({', '.join(names)})")
    checked = {}
    for layer in network.layers:
        if layer.name not in layouts:
            continue
        kind = layouts[layer.name]
        if not isinstance(kind, Layout):
            raise PlanError(f"layouts.{layer.name}", f"expected one of "
                            f"{', '.join(k.value for k in Layout)}, got {kind!r}")
        if not SynapseLayout.allows(layer, kind):
            raise PlanError(f"layouts.{layer.name}", SynapseLayout.refusal(layer, kind))
        checked[layer.name] = kind
    return checked


def top_name(net: Network) -> str:
    """Verilog module name of the network's core."""
    return "snnhw_" + (re.sub(r"[^A-Za-z0-9_]", "_", net.name).lower() or "core")


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """One layer engine: its synapse layout, widths and memories."""

    layer: Layer  #: the layer as the core holds it: its neurons in :attr:`order`
    lanes: int
    synapses: SynapseLayout
    placement: Placement  #: where the synapse memory lives
    acc_bits: int  #: signed accumulator width: no layer input can overflow it
    state_bits: int  #: bits the membrane memory stores per neuron (V or a level index)
    queue_depth: int
    #: the network neuron at each position of the core (lane balancing, :mod:`.balance`), or
    #: None: the network's own order
    order: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def bank_depth(self) -> int:
        """Neurons per lane (accumulator and membrane words per lane)."""
        return self.synapses.bank_depth

    @property
    def storage(self) -> str:
        """How the synapse memory holds the weights: ``matrix`` (dense, recurrent: the index
        matrix), ``kernel`` (conv2d in the kernel layout: each kept tap once, the targets
        generated by the engine) or ``unrolled`` (conv2d in another layout: the unrolled matrix,
        each tap once per output position it reaches)."""
        if self.synapses.kind is Layout.KERNEL:
            return "kernel"
        return "unrolled" if self.layer.kind == "conv2d" else "matrix"

    @property
    def stored_synapses(self) -> int:
        """Synapses the synapse memory holds (:attr:`storage`): a convolution's kept taps in the
        kernel layout, its unrolled ones otherwise."""
        if self.synapses.kind is Layout.KERNEL:
            return self.layer.connectivity.synapse_count
        return int(self.layer.connectivity.fan_out().sum())

    @property
    def in_addr_bits(self) -> int:
        """Address width of the presynaptic events the engine takes."""
        return addr_bits(self.layer.fan_in)

    @property
    def out_addr_bits(self) -> int:
        """Address width of the spike events the engine emits."""
        return addr_bits(self.layer.size)

    @cached_property
    def memories(self) -> tuple[MemorySpec, ...]:
        """Every memory of the engine."""
        syn, layer = self.synapses, self.layer
        memories = [
            MemorySpec(MemoryKind.SYNAPSE, syn.total_words, syn.word_bits,
                       rom=self.placement is Placement.BLOCK, placement=self.placement),
            MemorySpec(MemoryKind.CODEBOOK, len(layer.codebook), layer.weight_bits, rom=True),
            MemorySpec(MemoryKind.QUEUE, self.queue_depth, self.out_addr_bits + 1, rom=False),
        ]
        if syn.has_pointers:
            memories.append(MemorySpec(MemoryKind.POINTER, layer.fan_in, syn.pointer_bits,
                                       rom=True))
        parameter_bits = per_neuron_bits(layer.neuron)
        if parameter_bits:
            memories.append(MemorySpec(MemoryKind.PARAMETER, layer.size, parameter_bits,
                                       rom=True))
        # One membrane memory by neuron: the sweep reads and writes one neuron a cycle.
        memories.append(MemorySpec(MemoryKind.MEMBRANE, layer.size, self.state_bits, rom=False))
        for _ in range(self.lanes):
            # Two accumulator banks per lane: timestep t+1 accumulates into one while the sweep
            # of t reads and clears the other (each bank a one-read, one-write memory).
            for _bank in range(2):
                memories.append(MemorySpec(MemoryKind.ACCUMULATOR, self.bank_depth,
                                           self.acc_bits, rom=False))
        return tuple(memories)

    @cached_property
    def memory_bits(self) -> dict[str, int]:
        """Bits of each kind of stored memory (synapse, pointer, codebook, parameter, membrane,
        accumulator)."""
        return {kind.value: sum(m.bits for m in self.memories if m.kind is kind)
                for kind in STORED}


@dataclass(frozen=True, eq=False)
class CorePlan:
    """The core of a network at a lane count, with each layer's synapse placement.

    Build it with :meth:`build`; :meth:`with_placement` gives the same core with synapses placed
    elsewhere without laying them out again.
    """

    network: Network
    lanes: int
    layers: tuple[LayerPlan, ...]
    spram: bool = False  #: large-RAM synapse memories are iCE40 SB_SPRAM256KA primitives
    #: block RAM modes, ``(depth, width)``, that synapse ROMs are split by width for, each slice
    #: in block RAM (:meth:`synapse_slice_bits`); empty: each is one memory, placed by Yosys
    bram_modes: tuple[tuple[int, int], ...] = ()
    #: the network input at each core input (:func:`~snnhw.plan.inputs.kept_inputs`), or None:
    #: the core takes the network's inputs as they are
    kept_inputs: np.ndarray | None = None

    @classmethod
    def build(cls, network: Network, lanes: int = 1, *, large: Iterable[str] = (),
              spram: bool = False, queue_depth: int = QUEUE_DEPTH,
              layouts: Mapping[str, Layout] | None = None, balance: bool = True,
              words_slack: float = WORDS_SLACK, compact_inputs: bool = True) -> "CorePlan":
        """Plan the core of ``network`` at ``lanes`` lanes; the layers named in ``large`` keep
        their synapses in large RAM (:attr:`Placement.LARGE`). Each layer's synapses take the
        layout that stores them in the fewest bits, the delta layout at the gap width of the
        fewest bits within ``words_slack`` of the fewest words (:meth:`SynapseLayout.build`;
        ``math.inf``: the fewest bits alone), or the layout ``layouts`` names for it (tests use
        this to exercise every layout). With
        ``balance``, each hidden dense or recurrent layer's neurons are reordered where that
        lowers its synapse words (:func:`~snnhw.plan.balance.lane_order`). With
        ``compact_inputs``, the core's inputs are the network inputs with a synapse
        (:mod:`snnhw.plan.inputs`); without, all of them (the formal proofs use this to give a
        one-layer core the empty columns an inner layer has)."""
        if not isinstance(network, Network):
            raise TypeError(f"Network must be a Network, not {network!r}")
        check_network(network)
        check_lanes(lanes)
        if not isinstance(queue_depth, int) or queue_depth < 4:
            raise PlanError("queue_depth", f"expected an integer of at least 4, "
                                           f"got {queue_depth!r}")
        layouts = _check_layouts(network, layouts or {})
        orders = {}
        if balance:
            for number, layer in enumerate(network.layers):
                order = lane_order(layer, lanes, words_slack) \
                    if balanceable(network, number) else None
                if order is not None:
                    orders[layer.name] = order
        kept = kept_inputs(network) if compact_inputs else None
        held = compacted(permuted(network, orders) if orders else network, kept)
        layers = tuple(
            LayerPlan(layer=layer, lanes=lanes,
                      synapses=SynapseLayout.build(layer, lanes, layouts.get(layer.name),
                                                   words_slack=words_slack),
                      placement=Placement.BLOCK, acc_bits=accumulator_bits(layer),
                      state_bits=membrane_bits(layer.neuron), queue_depth=queue_depth,
                      order=orders.get(layer.name))
            for layer in held.layers)
        plan = cls(network=network, lanes=lanes, layers=layers, spram=spram, kept_inputs=kept)
        return plan.with_placement({name: Placement.LARGE for name in large}) if large else plan

    def with_placement(self, placement: Mapping[str, Placement]) -> "CorePlan":
        """This core with the synapse memories of the named layers placed as given (layers not
        named keep theirs)."""
        names = [layer.name for layer in self.layers]
        unknown = sorted(set(placement) - set(names))
        if unknown:
            raise PlanError("placement", f"{', '.join(unknown)} is not a layer of "
                                         f"{self.network.name} ({', '.join(names)})")
        layers = tuple(replace(layer, placement=Placement(placement.get(layer.name,
                                                                        layer.placement)))
                       for layer in self.layers)
        return replace(self, layers=layers)

    def synapse_slice_bits(self, layer: LayerPlan) -> int | None:
        """Bits per width slice of ``layer``'s synapse ROM, each slice in block RAM (the
        word width: one such memory), with :attr:`bram_modes`; None: one memory that the
        synthesis tool places (block RAM or logic), or a large RAM."""
        syn = layer.synapses
        if not self.bram_modes or layer.placement is not Placement.BLOCK:
            return None
        return rom_slice_bits(syn.total_words, syn.word_bits, self.bram_modes)

    # -- the whole core ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.network.name

    @property
    def top(self) -> str:
        """Verilog module name of the core."""
        return top_name(self.network)

    @property
    def input_size(self) -> int:
        """Inputs of the core: the network's inputs with a synapse (:attr:`kept_inputs`)."""
        return self.network.input_size if self.kept_inputs is None else len(self.kept_inputs)

    @property
    def input_addr_bits(self) -> int:
        return addr_bits(self.input_size)

    def core_inputs(self, spikes: np.ndarray) -> np.ndarray:
        """Network input ``spikes`` [..., network inputs] as the core's input events number
        them [..., :attr:`input_size`] (:func:`~snnhw.plan.inputs.core_inputs`)."""
        return core_inputs(self.kept_inputs, spikes)

    @property
    def output_addr_bits(self) -> int:
        return addr_bits(self.network.output_size)

    @property
    def large(self) -> list[str]:
        """Layers whose synapses sit in large RAM, loaded at run time, in network order."""
        return [layer.name for layer in self.layers if layer.placement is Placement.LARGE]

    def load_image(self) -> bytes:
        """What the core's ``load`` port takes: the large-RAM layers' synapse words, in network
        order (see :mod:`snnhw.hw.synapses`)."""
        return b"".join(layer.synapses.image() for layer in self.layers
                        if layer.placement is Placement.LARGE)

    @property
    def load_size(self) -> int:
        """Bytes of :meth:`load_image`."""
        return sum(layer.synapses.total_words * layer.synapses.word_bytes
                   for layer in self.layers if layer.placement is Placement.LARGE)

    def in_plan_order(self, name: str, values: np.ndarray) -> np.ndarray:
        """Layer ``name``'s per-neuron ``values`` (last axis, network order) in the order the
        core holds its neurons."""
        order = self._order(name)
        return values if order is None else values[..., order]

    def in_network_order(self, name: str, values: np.ndarray) -> np.ndarray:
        """Layer ``name``'s per-neuron ``values`` (last axis, the core's order) in network
        order: the inverse of :meth:`in_plan_order`."""
        order = self._order(name)
        if order is None:
            return values
        result = np.empty_like(values)
        result[..., order] = values
        return result

    def _order(self, name: str) -> np.ndarray | None:
        for layer in self.layers:
            if layer.name == name:
                return layer.order
        raise KeyError(name)

    @property
    def memory_bits(self) -> dict[str, int]:
        """Bits of each kind of stored memory over all layers, and ``total``."""
        totals = {kind.value: sum(layer.memory_bits[kind.value] for layer in self.layers)
                  for kind in STORED}
        return totals | {"total": sum(totals.values())}
