"""The neuromorphic core: one engine per layer, chained by event streams."""

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..network.format import Network
from .engine import EventLayout, LayerEngine, ProbeSignature
from .synapses import SynapseLoader

__all__ = ["Core"]

TIMESTEP_BITS = 16
CYCLE_BITS = 32


class Core(wiring.Component):
    """A whole network in hardware: input spike events in, output spike events out.

    A sample runs as: pulse ``start`` with ``timesteps`` set (this clears every membrane and the
    cycle counter); stream the input events of each timestep, each timestep closed by an ``eot``
    event; read the output layer's spike events (each timestep closed by ``eot``) from ``o``.
    ``done`` rises once the last timestep's ``eot`` has left ``o``; ``cycles`` counts the cycles
    from ``start`` until then.

    Parameters
    ----------
    network : Network
        The integer network to compute.
    lanes : int
        Synapses each layer processes per cycle (P).
    queue_depth : int
        Depth of each layer's output event queue.
    large_ram : collection of str
        Layers whose synapses sit in RAM loaded at run time (large single-port RAM such as
        iCE40 SPRAM) rather than in ROM: before the first sample, pulse ``load_begin`` and
        stream the load image (:func:`snnhw.hw.layout.synapse_image`) into ``load`` until
        ``loaded`` rises. The memories keep their contents across samples and ``start``.
    spram : bool
        Build those RAMs from iCE40 SB_SPRAM256KA primitives.

    Members
    -------
    i : In(stream.Signature(EventLayout(input_size)))
        Input spike events.
    o : Out(stream.Signature(EventLayout(output_size)))
        Output-layer spike events.
    start : In(1)
        Begin a new sample.
    timesteps : In(16)
        Timesteps of the sample, sampled at ``start``.
    done : Out(1)
        The sample is complete.
    cycles : Out(32)
        Cycles since ``start``, frozen at ``done``.
    probe_<layer> : Out(ProbeSignature)
        Per layer, every neuron update (for verification; unused probes synthesise away).
    load : In(stream.Signature(8))
        Only with ``large_ram``: the load image, byte by byte.
    load_begin : In(1)
        Only with ``large_ram``: restart loading from the image's first byte.
    loaded : Out(1)
        Only with ``large_ram``: the whole image has been written since ``load_begin``.
    """

    def __init__(self, network: Network, lanes: int = 1, queue_depth: int = 16, *,
                 large_ram=(), spram: bool = False):
        if not isinstance(network, Network):
            raise TypeError(f"Network must be a Network, not {network!r}")
        names = [layer.name for layer in network.layers]
        unknown = sorted(set(large_ram) - set(names))
        if unknown:
            self._MustUse__silence = True  # never built: do not warn that it went unused
            raise ValueError(f"Large-RAM layers must be layers of the network "
                             f"({', '.join(names)}), not {', '.join(unknown)}")
        self.network = network
        self.large_ram = [name for name in names if name in set(large_ram)]
        self.engines = [LayerEngine(layer, lanes, queue_depth,
                                    loaded=layer.name in self.large_ram, spram=spram)
                        for layer in network.layers]
        self.loader = None
        if self.large_ram:
            self.loader = SynapseLoader({
                engine.layer.name: (engine.layout.total_words, engine.layout.word_bits)
                for engine in self.engines if engine.layer.name in self.large_ram})
        members = {
            "i": In(stream.Signature(EventLayout(network.input_size))),
            "o": Out(stream.Signature(EventLayout(network.output_size))),
            "start": In(1),
            "timesteps": In(TIMESTEP_BITS),
            "done": Out(1),
            "cycles": Out(CYCLE_BITS),
        }
        for layer in network.layers:
            members[f"probe_{layer.name}"] = Out(ProbeSignature(layer.size, layer.neuron.v_bits))
        if self.loader is not None:
            members |= {"load": In(stream.Signature(8)), "load_begin": In(1), "loaded": Out(1)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for layer, engine in zip(self.network.layers, self.engines):
            m.submodules[layer.name] = ResetInserter(self.start)(engine)
            wiring.connect(m, engine.probe, wiring.flipped(getattr(self, f"probe_{layer.name}")))
        wiring.connect(m, wiring.flipped(self.i), self.engines[0].i)
        for upstream, downstream in zip(self.engines, self.engines[1:]):
            wiring.connect(m, upstream.o, downstream.i)
        wiring.connect(m, self.engines[-1].o, wiring.flipped(self.o))
        if self.loader is not None:
            m.submodules.loader = loader = ResetInserter(self.load_begin)(self.loader)
            wiring.connect(m, wiring.flipped(self.load), loader.i)
            m.d.comb += self.loaded.eq(loader.done)
            for engine in self.engines:
                if engine.layer.name in self.large_ram:
                    wiring.connect(m, getattr(loader, f"write_{engine.layer.name}"), engine.write)

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
