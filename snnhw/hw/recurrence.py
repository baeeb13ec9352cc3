"""A recurrent layer in hardware: a :class:`~snnhw.hw.engine.LayerEngine` whose own spike events
of timestep t are merged into its input events of timestep t + 1.

The engine is the dense one, unchanged: its synapse memory holds ``external + size`` columns
(:class:`~snnhw.network.connectivity.Recurrent`), and an own spike of neuron k enters it as
presynaptic address ``external + k``. Around it:

- an :class:`EventFork` copies every event the engine emits to the next layer (or the core's
  output) and back to the merger;
- an :class:`EventMerger` feeds the engine the external events of timestep t + 1 and the own
  events of timestep t, and closes timestep t + 1 with one ``eot`` once both the external
  ``eot`` of t + 1 and the own ``eot`` of t have passed (at t = 0 there are no own events).

Why it cannot deadlock: the engine accepts events whenever it accumulates, and it accumulates
timestep t + 1 while it sweeps t (its accumulators are double-buffered), so the own events of
the sweep of t always drain into it; its next sweep waits for the merged ``eot`` of t + 1, which
comes only after the own ``eot`` of t. The merger takes own events first, so a stalled external
source never holds the engine's output. After the last timestep the own events go on into an
accumulation that is never swept (``start`` resets it), so the fork never waits on them.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan import LayerPlan, Placement
from ..plan.widths import addr_bits
from .engine import EventLayout, LayerEngine, ProbeSignature
from .synapses import WriteSignature

__all__ = ["EventFork", "EventMerger", "RecurrentLayer"]


class EventFork(wiring.Component):
    """Every event of ``i`` goes to both ``a`` and ``b``; each output takes it once, in any
    order, and ``i`` moves on when both have.

    Members
    -------
    i : In(stream.Signature(EventLayout(addr_bits)))
    a, b : Out(stream.Signature(EventLayout(addr_bits)))
    """

    def __init__(self, addr_bits: int):
        event = stream.Signature(EventLayout(addr_bits))
        super().__init__({"i": In(event), "a": Out(event), "b": Out(event)})

    def elaborate(self, platform):
        m = Module()
        taken_a, taken_b = Signal(), Signal()  # this output already has the current event
        m.d.comb += [
            self.a.payload.eq(self.i.payload), self.b.payload.eq(self.i.payload),
            self.a.valid.eq(self.i.valid & ~taken_a), self.b.valid.eq(self.i.valid & ~taken_b),
            self.i.ready.eq((taken_a | self.a.ready) & (taken_b | self.b.ready)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [taken_a.eq(0), taken_b.eq(0)]
        with m.Else():
            with m.If(self.a.valid & self.a.ready):
                m.d.sync += taken_a.eq(1)
            with m.If(self.b.valid & self.b.ready):
                m.d.sync += taken_b.eq(1)
        return m


class EventMerger(wiring.Component):
    """The input events of a recurrent layer's engine: timestep t's external events (``i``) and
    the layer's own events of timestep t - 1 (``own``, re-addressed to ``external + k``), closed
    by one ``eot`` once both streams' ``eot`` have passed (at t = 0 only the external one, as
    there is no timestep -1).

    Parameters
    ----------
    external, size : int
        Pre-synaptic neurons outside the layer; neurons of the layer.

    Members
    -------
    i : In(stream.Signature(EventLayout(addr_bits(external))))
    own : In(stream.Signature(EventLayout(addr_bits(size))))
    o : Out(stream.Signature(EventLayout(addr_bits(external + size))))
    """

    def __init__(self, external: int, size: int):
        self.external = external
        super().__init__({
            "i": In(stream.Signature(EventLayout(addr_bits(external)))),
            "own": In(stream.Signature(EventLayout(addr_bits(size)))),
            "o": Out(stream.Signature(EventLayout(addr_bits(external + size)))),
        })

    def elaborate(self, platform):
        m = Module()
        external_done = Signal()  # the external eot of the timestep being merged has passed
        own_done = Signal(init=1)  # the own eot of the timestep before it has (none before t=0)
        own, ext, out = self.own, self.i, self.o
        # Own events first: they hold the engine's output (and so the next layer) until taken.
        with m.If(~own_done & own.valid):
            m.d.comb += [
                out.valid.eq(~own.payload.eot),
                out.payload.addr.eq(own.payload.addr + self.external),
                own.ready.eq(own.payload.eot | out.ready),  # an own eot is consumed, not sent
            ]
            with m.If(own.payload.eot):
                m.d.sync += own_done.eq(1)
        with m.Elif(~external_done & ext.valid):
            m.d.comb += [
                out.valid.eq(~ext.payload.eot),
                out.payload.addr.eq(ext.payload.addr),
                ext.ready.eq(ext.payload.eot | out.ready),
            ]
            with m.If(ext.payload.eot):
                m.d.sync += external_done.eq(1)
        with m.Elif(external_done & own_done):
            m.d.comb += [out.valid.eq(1), out.payload.eot.eq(1)]
            with m.If(out.ready):
                m.d.sync += [external_done.eq(0), own_done.eq(0)]
        return m


class RecurrentLayer(wiring.Component):
    """A recurrent layer's engine with its merger and fork; the same ports as
    :class:`~snnhw.hw.engine.LayerEngine`, except that ``i`` takes only the external events.

    Parameters
    ----------
    plan : LayerPlan
        The plan of a ``kind: recurrent`` layer.
    spram, slice_bits
        As for :class:`~snnhw.hw.engine.LayerEngine`.
    """

    def __init__(self, plan: LayerPlan, *, spram: bool = False, slice_bits: int | None = None):
        self.plan = plan
        self.engine = LayerEngine(plan, spram=spram, slice_bits=slice_bits)
        layer = plan.layer
        members = {
            "i": In(stream.Signature(EventLayout(addr_bits(layer.external_fan_in)))),
            "o": Out(stream.Signature(EventLayout(plan.out_addr_bits))),
            "probe": Out(ProbeSignature(plan.out_addr_bits, layer.neuron.v_bits)),
        }
        if plan.placement is Placement.LARGE:
            synapses = self.engine.synapses
            members["write"] = In(WriteSignature(synapses.depth, synapses.width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        layer = self.plan.layer
        m.submodules.engine = engine = self.engine
        m.submodules.merger = merger = EventMerger(layer.external_fan_in, layer.size)
        m.submodules.fork = fork = EventFork(self.plan.out_addr_bits)
        wiring.connect(m, wiring.flipped(self.i), merger.i)
        wiring.connect(m, merger.o, engine.i)
        wiring.connect(m, engine.o, fork.i)
        wiring.connect(m, fork.a, wiring.flipped(self.o))
        wiring.connect(m, fork.b, merger.own)
        wiring.connect(m, engine.probe, wiring.flipped(self.probe))
        if "write" in self.signature.members:
            wiring.connect(m, wiring.flipped(self.write), engine.write)
        return m
