"""The compile report: the shape and memory of every layer of a core, from its plan."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .core import CorePlan
from .layout import Layout

__all__ = ["LayerReport", "CoreReport", "core_report"]


@dataclass(frozen=True)
class LayerReport:
    """One layer of the core."""

    name: str
    kind: str  #: the layer's connectivity: dense, recurrent or conv2d
    size: int
    fan_in: int  #: pre-synaptic columns; a recurrent layer's include its own neurons
    synapses: int  #: synapses stored (not pruned; a convolution's kept taps, or unrolled ones)
    #: "matrix", "kernel" or "unrolled" (conv2d) (:attr:`snnhw.plan.LayerPlan.storage`)
    storage: str
    sparsity: float  #: :attr:`snnhw.network.Layer.sparsity`
    codebook_entries: int
    weight_bits: int
    v_bits: int
    state_bits: int  #: bits stored per neuron: V, or a state-level index
    layout: str  #: "implicit", "addressed", "delta" or "kernel" (:class:`snnhw.plan.Layout`)
    gap_bits: int  #: the delta layout's gap width (0 in the others)
    placement: str  #: "block" or "large"
    synapse_words: int
    synapse_word_bits: int
    #: words one spike of every input reads, each once (at least one a spike): the layout's
    #: cycles; the delta layout's gap width keeps them within WORDS_SLACK of the fewest
    spike_words: int
    accumulator_bits: int
    memory_bits: dict[str, int]
    #: the network neuron the core holds at each position (lane balancing), or None: network
    #: order (:attr:`snnhw.plan.LayerPlan.order`); the memories are in the core's order
    neuron_order: list[int] | None = None
    #: kernel layout: [K_h, K_w], and the neurons of a lane's run (H'*W'); else None and 1
    kernel: list[int] | None = None
    group: int = 1


@dataclass(frozen=True)
class CoreReport:
    """The whole core; :meth:`to_json` is what ``report.json`` holds."""

    snnhw: str
    network: str
    top: str
    lanes: int
    input_size: int  #: the network's inputs
    output_size: int
    layers: list[LayerReport]
    memory_bits: dict[str, int]
    #: the core's inputs: the network inputs with a synapse (:mod:`snnhw.plan.inputs`)
    core_inputs: int = 0
    #: the network input at each core input, or None: the network's own numbering
    kept_inputs: list[int] | None = None

    def to_json(self) -> dict:
        return asdict(self)


def core_report(plan: CorePlan) -> CoreReport:
    """The report of a planned core."""
    from .. import __version__

    layers = []
    for lp in plan.layers:
        layer = lp.layer
        layers.append(LayerReport(
            name=layer.name, kind=layer.kind, size=layer.size, fan_in=layer.fan_in,
            synapses=lp.stored_synapses, storage=lp.storage, sparsity=layer.sparsity,
            codebook_entries=len(layer.codebook), weight_bits=layer.weight_bits,
            v_bits=layer.neuron.v_bits, state_bits=lp.state_bits,
            layout=lp.synapses.kind.value, gap_bits=lp.synapses.gap_bits,
            placement=lp.placement.value,
            synapse_words=lp.synapses.total_words, synapse_word_bits=lp.synapses.word_bits,
            spike_words=lp.synapses.spike_words,
            accumulator_bits=lp.acc_bits, memory_bits=dict(lp.memory_bits),
            neuron_order=None if lp.order is None else [int(k) for k in lp.order],
            kernel=list(lp.synapses.kernel) if lp.synapses.kind is Layout.KERNEL else None,
            group=lp.synapses.group))
    net = plan.network
    return CoreReport(snnhw=__version__, network=net.name, top=plan.top, lanes=plan.lanes,
                      input_size=net.input_size, output_size=net.output_size, layers=layers,
                      memory_bits=plan.memory_bits, core_inputs=plan.input_size,
                      kept_inputs=None if plan.kept_inputs is None
                      else [int(k) for k in plan.kept_inputs])
