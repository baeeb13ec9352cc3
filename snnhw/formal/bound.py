"""Every sample finishes: ``done`` rises within the bound of the cycle model
(:mod:`snnhw.plan.cycles`) plus a fixed start-up cost, for any input spikes."""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Cover, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..hw import Core
from ..hw.engine import FETCH_DEPTH
from ..plan import CorePlan
from ..plan.cycles import spike_cycles, sweep_overhead
from .streams import EventSource

__all__ = ["CycleBound", "startup_cycles", "ACCUMULATE_OVERHEAD"]

#: Cycles a timestep's accumulation takes beyond one per synapse word: five cycles of drain and
#: handoff to the sweep (DRAIN in the engine waits until the last word has left S0 to S3 of the
#: accumulate pipeline). The end-of-timestep event and the next timestep's first column wait in
#: the engine's column queue meanwhile, so they cost no cycle of their own.
ACCUMULATE_OVERHEAD = 5


def startup_cycles(plan: CorePlan) -> int:
    """Cycles a one-layer sample takes beyond the sum of its per-timestep bounds.

    Clearing the memories (one word a cycle), or the first column's fetch where it takes longer
    (the pointer read, its register and the column queue: ``FETCH_DEPTH - 1`` cycles); one
    sweep of pipeline fill (the accumulation of timestep t+1 overlaps the sweep of t, so a
    sample of T timesteps is T accumulations and T sweeps in a two-stage pipeline, which the sum
    of per-timestep maxima undercounts by at most one stage, and the sweep stage is always
    neurons + the layer's
    :func:`~snnhw.plan.cycles.sweep_overhead`); and two cycles from the sweep's last ``eot`` to
    ``done`` (the register in front of the output queue, and ``done`` after the ``eot`` leaves).
    """
    layer = plan.layers[0]
    first_column = max(FETCH_DEPTH - 1, layer.bank_depth)  # the clear, or the first fetch
    return first_column + layer.layer.size + sweep_overhead(layer.layer.neuron) + 2


class CycleBound(wiring.Component):
    """Asserts that a one-layer core, started once and then fed a sample of ``timesteps``
    timesteps without idle cycles (the spikes are free) while its output is always ready,
    raises ``done`` no later than ``startup`` cycles after the sum of its per-timestep bounds.

    With ``model="words"`` a timestep's bound is
    ``max(synapse words + ACCUMULATE_OVERHEAD, neurons + sweep overhead)``, the synapse words
    being those of the columns of the spiking inputs (at least one per spike) and the sweep
    overhead the layer's :func:`~snnhw.plan.cycles.sweep_overhead` (6, or 8 with a state
    codebook); with ``model="stated"`` it is :data:`snnhw.plan.cycles.BOUND_FORMULA`, each
    spiking input's synapses P a cycle but at least one cycle
    (:func:`~snnhw.plan.cycles.spike_cycles`) against the neurons, plus the sweep overhead: at
    P = 1 the engine's words exactly; with lanes a column whose synapses crowd one lane takes
    more words than its synapses / P, which the stated bound does not count.

    While the sample is still being sent, the bound of the timesteps not yet complete is taken
    at its smallest (no further events), so the assertion fails as soon as the core is late
    for any continuation: a core that stops taking events cannot escape it.

    Members
    -------
    addr, eot : In
        The free payload of the next input event.
    """

    def __init__(self, plan: CorePlan, timesteps: int, startup: int, model: str = "words"):
        if model not in ("words", "stated"):
            raise ValueError(f"Bound model must be 'words' or 'stated', not {model!r}")
        if len(plan.layers) != 1:
            raise ValueError(f"The cycle-bound harness takes a one-layer core, not "
                             f"{len(plan.layers)} layers")
        self.plan, self.timesteps, self.startup, self.model = plan, timesteps, startup, model
        super().__init__({"addr": In(plan.input_addr_bits), "eot": In(1)})

    def _model(self):
        """Per presynaptic neuron, what its spike adds to a timestep's work; the divisor of the
        work; the overhead of the accumulation side."""
        layer = self.plan.layers[0]
        if self.model == "stated":
            # cycles.py: per spike max(1, ceil(synapses / P)), same overhead as the sweep.
            return ([int(n) for n in spike_cycles(layer)], 1,
                    sweep_overhead(layer.layer.neuron))
        # What the engine does: one cycle per synapse word of the column (at least one per
        # event), then five cycles of drain and handoff.
        return [max(1, int(n)) for n in layer.synapses.col_words], 1, ACCUMULATE_OVERHEAD

    def max_bound(self) -> int:
        """The largest bound any sample can have (every input spiking at every timestep)."""
        cost, divide, overhead = self._model()
        size = self.plan.layers[0].layer.size
        sweep = size + sweep_overhead(self.plan.layers[0].layer.neuron)
        per_step = max(-(-sum(cost) // divide) + overhead, sweep)
        return self.timesteps * per_step + self.startup

    def elaborate(self, platform):
        m = Module()
        plan, steps = self.plan, self.timesteps
        layer = plan.layers[0].layer
        m.submodules.core = core = Core(plan)
        cost, divide, overhead = self._model()
        limit = self.max_bound() + 1

        started = Signal()
        m.d.sync += started.eq(1)
        m.d.comb += [core.start.eq(~started), core.timesteps.eq(steps), core.o.ready.eq(1),
                     core.i.payload.addr.eq(self.addr), core.i.payload.eot.eq(self.eot)]
        source = EventSource(m, core.i, fan_in=layer.fan_in, timesteps=steps,
                             restart=core.start, gapless=True)

        # The cycle model's bound, as the events are sent.
        events = Signal(range(sum(cost) + 1))  # work of this timestep so far
        complete = Signal(range(limit + 1))  # bounds of the timesteps already closed
        this_step = Signal(range(limit + 1))
        accumulate = Signal(range(limit + 1))
        m.d.comb += accumulate.eq((events + divide - 1) // divide + overhead)
        sweep = layer.size + sweep_overhead(layer.neuron)  # a timestep's sweep side
        m.d.comb += this_step.eq(Mux(accumulate > sweep, accumulate, sweep))
        with m.If(source.taken & core.i.payload.eot):
            m.d.sync += [complete.eq(complete + this_step), events.eq(0)]
        with m.Elif(source.taken):
            m.d.sync += events.eq(events + Array(cost)[core.i.payload.addr])
        bound = Signal(range(limit + 1))
        later = (steps - 1 - source.eots) * sweep
        m.d.comb += bound.eq(Mux(source.eots == steps, complete, complete + this_step + later)
                             + self.startup)

        elapsed = Signal(range(limit + 2))  # cycles since start
        with m.If(started & ~core.done & (elapsed <= limit)):
            m.d.sync += elapsed.eq(elapsed + 1)
        m.d.comb += [
            Assert(~started | core.done | (elapsed <= bound), "done later than the bound"),
            Cover(core.done & started & (source.eots == steps)),
        ]
        return m
