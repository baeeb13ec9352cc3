"""The neuromorphic core: one engine per layer, chained by event streams."""

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan import CYCLE_BITS, TIMESTEP_BITS, CorePlan
from .engine import EventLayout, LayerEngine, ProbeSignature
from .recurrence import RecurrentLayer
from .synapses import SynapseLoader

__all__ = ["Core", "StreamRegister"]


class StreamRegister(wiring.Component):
    """A stream through registers at full rate: ``o.valid`` and ``i.ready`` are flip-flops, so
    no combinational path runs from the sink's ``ready`` to the source (a skid buffer: while
    ``o`` is stalled, the one event ``i`` offered meanwhile waits in a second register). Costs
    a cycle of latency.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal.like(self.i.payload)
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.valid & ~self.o.ready):
            with m.If(self.i.valid & ~skid_valid):
                m.d.sync += [skid_valid.eq(1), skid.eq(self.i.payload)]
        with m.Elif(skid_valid):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(skid), skid_valid.eq(0)]
        with m.Else():
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m


class Core(wiring.Component):
    """A whole network in hardware: input spike events in, output spike events out.

    A sample runs as: pulse ``start`` with ``timesteps`` set (this clears every membrane and the
    cycle counter); stream the input events of each timestep, each timestep closed by an ``eot``
    event; read the output layer's spike events (each timestep closed by ``eot``) from ``o``.
    ``done`` rises once the last timestep's ``eot`` has left ``o``; ``cycles`` counts the cycles
    from ``start`` until then.

    Parameters
    ----------
    plan : CorePlan
        The network, lane count, and each layer's synapse placement. Layers placed in large RAM
        (:attr:`~snnhw.plan.CorePlan.large`) keep their synapses in RAM loaded at run time: before
        the first sample, pulse ``load_begin`` and stream the plan's load image
        (:meth:`~snnhw.plan.CorePlan.load_image`) into ``load`` until ``loaded`` rises. The
        memories keep their contents across samples and ``start``.

    Members
    -------
    i : In(stream.Signature(EventLayout(plan.input_addr_bits)))
        Input spike events.
    o : Out(stream.Signature(EventLayout(plan.output_addr_bits)))
        Output-layer spike events.
    start : In(1)
        Begin a new sample.
    timesteps : In(TIMESTEP_BITS)
        Timesteps of the sample, sampled at ``start``.
    done : Out(1)
        The sample is complete.
    cycles : Out(CYCLE_BITS)
        Cycles since ``start``, frozen at ``done``.
    probe_<layer> : Out(ProbeSignature)
        Per layer, every neuron update (for verification; unused probes synthesise away).
    load : In(stream.Signature(8))
        Only with large-RAM layers: the load image, byte by byte.
    load_begin : In(1)
        Only with large-RAM layers: restart loading from the image's first byte.
    loaded : Out(1)
        Only with large-RAM layers: the whole image has been written since ``load_begin``.
    """

    def __init__(self, plan: CorePlan):
        if not isinstance(plan, CorePlan):
            raise TypeError(f"Plan must be a CorePlan, not {plan!r}")
        self.plan = plan
        # A recurrent layer's engine comes with the merger and fork that feed its spikes back.
        self.engines = [(RecurrentLayer if layer.layer.kind == "recurrent" else LayerEngine)(
            layer, spram=plan.spram, slice_bits=plan.synapse_slice_bits(layer))
            for layer in plan.layers]
        self.loader = None
        if plan.large:
            self.loader = SynapseLoader({
                layer.name: (layer.synapses.total_words, layer.synapses.word_bits)
                for layer in plan.layers if layer.name in plan.large})
        members = {
            "i": In(stream.Signature(EventLayout(plan.input_addr_bits))),
            "o": Out(stream.Signature(EventLayout(plan.output_addr_bits))),
            "start": In(1),
            "timesteps": In(TIMESTEP_BITS),
            "done": Out(1),
            "cycles": Out(CYCLE_BITS),
        }
        for layer in plan.layers:
            members[f"probe_{layer.name}"] = Out(ProbeSignature(layer.out_addr_bits,
                                                                layer.layer.neuron.v_bits))
        if self.loader is not None:
            members |= {"load": In(stream.Signature(8)), "load_begin": In(1), "loaded": Out(1)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for layer, engine in zip(self.plan.layers, self.engines):
            m.submodules[layer.name] = ResetInserter(self.start)(engine)
            wiring.connect(m, engine.probe, wiring.flipped(getattr(self, f"probe_{layer.name}")))
        wiring.connect(m, wiring.flipped(self.i), self.engines[0].i)
        # Between layers, a register: the downstream engine's `ready` (its fetch control) and
        # the upstream queue's read logic are otherwise one long path between two engines.
        for layer, upstream, downstream in zip(self.plan.layers[1:], self.engines,
                                               self.engines[1:]):
            link = StreamRegister(upstream.o.payload.shape())
            m.submodules[f"{layer.name}_in"] = ResetInserter(self.start)(link)
            wiring.connect(m, upstream.o, link.i)
            wiring.connect(m, link.o, downstream.i)
        wiring.connect(m, self.engines[-1].o, wiring.flipped(self.o))
        if self.loader is not None:
            m.submodules.loader = loader = ResetInserter(self.load_begin)(self.loader)
            wiring.connect(m, wiring.flipped(self.load), loader.i)
            m.d.comb += self.loaded.eq(loader.done)
            for layer, engine in zip(self.plan.layers, self.engines):
                if layer.name in self.plan.large:
                    wiring.connect(m, getattr(loader, f"write_{layer.name}"), engine.write)

        remaining = Signal(TIMESTEP_BITS)
        running = Signal()
        started = Signal()
        m.d.comb += self.done.eq(started & ~running)
        with m.If(self.start):
            m.d.sync += [
                remaining.eq(self.timesteps), running.eq(self.timesteps != 0),
                started.eq(1), self.cycles.eq(0),
            ]
        with m.Elif(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(self.o.valid & self.o.ready & self.o.payload.eot):
                m.d.sync += remaining.eq(remaining - 1)
                with m.If(remaining == 1):
                    m.d.sync += running.eq(0)
        return m
