"""A ``start`` in the middle of a sample: afterwards the core behaves exactly like one that
has never run.

Two copies of the core: copy A runs anything at all (any input events, back-pressure,
``start`` pulses and ``timesteps``) until the solver's chosen cycle ``go``; copy B has sat
idle since reset. Both get ``start`` at ``go`` and from then on the same well-behaved sample
and the same back-pressure; every output of the two (ready, output events, done, the cycle
counter and every probe) must agree in every cycle after. B is a fresh core, which the
co-simulations check against the golden model, so A's next sample is bit-exact too.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from ..hw import Core
from ..hw.engine import EventLayout
from ..plan import TIMESTEP_BITS, CorePlan
from .streams import EventSource

__all__ = ["RestartEquivalence"]


class RestartEquivalence(wiring.Component):
    """Asserts that after a ``start`` a core with any history equals a fresh one.

    Members
    -------
    go : In(1)
        The cycle of the checked ``start`` (at most one).
    a_i, a_ready, a_start, a_timesteps : In
        Copy A's free inputs before ``go``.
    addr, eot, idle, ready : In
        The sample after ``go`` (``idle``: no event this cycle), and the back-pressure.
    """

    def __init__(self, plan: CorePlan, timesteps: int):
        self.plan, self.timesteps = plan, timesteps
        event = EventLayout(plan.input_addr_bits)
        super().__init__({
            "go": In(1),
            "a_i": In(stream.Signature(event)), "a_ready": In(1), "a_start": In(1),
            "a_timesteps": In(TIMESTEP_BITS),
            "addr": In(plan.input_addr_bits), "eot": In(1), "idle": In(1), "ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        m.submodules.a = a = Core(plan)
        m.submodules.b = b = Core(plan)

        went = Signal()  # go has happened (in an earlier cycle)
        with m.If(self.go):
            m.d.sync += went.eq(1)
        m.d.comb += Assume(~(self.go & went))

        # The sample after go, shared by both copies; B's handshake paces it (A's is asserted
        # equal).
        sample = stream.Signature(EventLayout(plan.input_addr_bits)).create()
        m.d.comb += [sample.valid.eq(went & ~self.idle), sample.payload.addr.eq(self.addr),
                     sample.payload.eot.eq(self.eot), sample.ready.eq(b.i.ready)]
        EventSource(m, sample, fan_in=plan.input_size, timesteps=self.timesteps,
                    restart=self.go, gapless=False)

        after = went | self.go
        m.d.comb += [
            a.start.eq(Mux(after, self.go, self.a_start)),
            a.timesteps.eq(Mux(after, self.timesteps, self.a_timesteps)),
            a.i.valid.eq(Mux(after, sample.valid, self.a_i.valid)),
            a.i.payload.eq(Mux(after, sample.payload, self.a_i.payload)),
            a.o.ready.eq(Mux(after, self.ready, self.a_ready)),
            b.start.eq(self.go), b.timesteps.eq(self.timesteps),
            b.i.valid.eq(sample.valid), b.i.payload.eq(sample.payload),
            b.o.ready.eq(Mux(after, self.ready, 1)),
            self.a_i.ready.eq(a.i.ready),
        ]

        with m.If(went):
            m.d.comb += [
                Assert(a.i.ready == b.i.ready, "input ready"),
                Assert(a.o.valid == b.o.valid, "output valid"),
                Assert(~b.o.valid | (a.o.payload == b.o.payload), "output event"),
                Assert(a.done == b.done, "done"),
                Assert(a.cycles == b.cycles, "cycle counter"),
            ]
            for layer in plan.layers:
                pa, pb = (getattr(core, f"probe_{layer.name}") for core in (a, b))
                m.d.comb += [
                    Assert(pa.valid == pb.valid, f"{layer.name} update"),
                    Assert(~pb.valid | ((pa.neuron == pb.neuron) & (pa.spike == pb.spike)
                                        & (pa.v == pb.v)), f"{layer.name} neuron, spike, V"),
                ]

        # Copy A is really mid-sample at go (it has taken events and updated neurons), and the
        # sample after go reaches the output.
        a_busy = Signal()
        first = getattr(a, f"probe_{plan.layers[0].name}")
        with m.If(~after & first.valid & (first.v != 0)):
            m.d.sync += a_busy.eq(1)
        m.d.comb += [Cover(self.go & a_busy & ~a.done),
                     Cover(went & b.o.valid & ~b.o.payload.eot)]
        return m
