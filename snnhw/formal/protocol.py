"""The stream rule on every engine's input and output, in a whole core."""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..hw import Core
from ..hw.engine import EventLayout
from ..plan import TIMESTEP_BITS, CorePlan
from .streams import hold_until_ready

__all__ = ["StreamProtocol"]


class StreamProtocol(wiring.Component):
    """Asserts the stream rule on the output of every engine of ``Core(plan)`` (each engine's
    input is the previous engine's output, or the core's input, which is assumed to obey it).

    Everything else is free: the input events (any addresses, any number of ``eot``), the
    output's back-pressure, ``start`` and ``timesteps`` in every cycle.
    """

    def __init__(self, plan: CorePlan, *, input_rule=Assume):
        # input_rule=Assert turns the environment's obligation into a claim the proof must
        # refute: it shows that the checker sees a violation when there is one.
        self.plan, self.input_rule = plan, input_rule
        super().__init__({
            "i": In(stream.Signature(EventLayout(plan.input_addr_bits))),
            "o": Out(stream.Signature(EventLayout(plan.output_addr_bits))),
            "start": In(1), "timesteps": In(TIMESTEP_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = Core(self.plan)
        wiring.connect(m, wiring.flipped(self.i), core.i)
        wiring.connect(m, core.o, wiring.flipped(self.o))
        m.d.comb += [core.start.eq(self.start), core.timesteps.eq(self.timesteps)]
        hold_until_ready(m, core.i, start=self.start, check=self.input_rule, name="core_i")
        for layer, engine in zip(self.plan.layers, core.engines):
            hold_until_ready(m, engine.o, start=self.start, check=Assert, name=f"{layer.name}_o")
            # A stall must be reachable, or the assertion would hold vacuously.
            m.d.comb += Cover(engine.o.valid & ~engine.o.ready)
        return m
