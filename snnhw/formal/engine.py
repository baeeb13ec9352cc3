"""One layer engine against a reference of DESIGN.md §2: no accumulator wraps for any input
spikes (up to every presynaptic neuron at once: the worst-case fan-in), and no membrane wraps.

The reference keeps each neuron's exact current (in a width that cannot wrap) per timestep
timestep slot and its membrane potential, and applies :class:`~snnhw.formal.lif.LIFSpec` when the
engine's probe reports the neuron's update: every reported V and spike must be the
specification's. An accumulator narrower than the worst-case sum, a membrane that wraps, or a
current credited to the wrong timestep shows up as a difference.

The engine's :data:`~snnhw.hw.engine.NO_COLLISION` memories return free values from a read that
meets a write to its address (``undefined_collisions``), as the board builds map them, so the
proof also shows that the engine never uses such a read.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Const, Cover, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..hw import LayerEngine
from ..hw.engine import FETCH_DEPTH
from ..plan import LayerPlan
from .lif import LIFSpec
from .streams import EventSource

__all__ = ["EngineReference"]


class EngineReference(wiring.Component):
    """Asserts that every update ``LayerEngine(plan)`` reports is the specification's.

    Parameters
    ----------
    plan : LayerPlan
    timesteps : int
        The most timesteps the (free) input sends.

    Members
    -------
    addr, eot, idle : In
        The free input events (``idle``: no event this cycle); each presynaptic neuron spikes
        at most once per timestep.
    ready : In(1)
        Free back-pressure on the engine's output.
    collision_data : In
        What the engine's colliding memory reads return (free).
    """

    def __init__(self, plan: LayerPlan, timesteps: int):
        self.plan, self.timesteps = plan, timesteps
        self.engine = LayerEngine(plan, undefined_collisions=True)
        super().__init__({"addr": In(plan.in_addr_bits), "eot": In(1), "idle": In(1),
                          "ready": In(1),
                          "collision_data": In(len(self.engine.collision_data))})

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        layer, neuron = plan.layer, plan.layer.neuron
        m.submodules.engine = engine = self.engine
        m.d.comb += [engine.collision_data.eq(self.collision_data),
                     engine.i.valid.eq(~self.idle), engine.i.payload.addr.eq(self.addr),
                     engine.i.payload.eot.eq(self.eot), engine.o.ready.eq(self.ready)]
        source = EventSource(m, engine.i, fan_in=layer.fan_in, timesteps=self.timesteps,
                             restart=Const(0), gapless=False)

        weights = layer.dense_weights()
        lowest = int((weights.clip(max=0)).sum(axis=1).min())
        highest = int((weights.clip(min=0)).sum(axis=1).max())
        wide = signed(plan.acc_bits + 2)  # the reference's own sums never wrap
        # current[slot][j]: neuron j's exact input in the timesteps of that slot (timestep mod
        # slots). The engine takes events up to FETCH_DEPTH ahead of its accumulation, so while
        # it sweeps timestep t it may have taken events of t + 1 to t + 1 + FETCH_DEPTH.
        slots = FETCH_DEPTH + 2
        current = [[Signal(wide, name=f"ref_current{p}_{j}") for j in range(layer.size)]
                   for p in range(slots)]
        v = [Signal(signed(neuron.v_bits), name=f"ref_v{j}") for j in range(layer.size)]
        in_slot = Signal(range(slots))  # the slot of the timestep the input sends
        sweep_slot = Signal(range(slots))  # the slot of the timestep the engine sweeps

        m.submodules.spec = spec = LIFSpec(neuron, plan.acc_bits + 2)
        probe = engine.probe
        m.d.comb += [spec.v.eq(Array(v)[probe.neuron]),
                     spec.current.eq(Array(Array(c) for c in current)[sweep_slot][probe.neuron])]
        with m.If(probe.valid):
            m.d.comb += [Assert(probe.neuron < layer.size, "neuron index"),
                         Assert(probe.v == spec.v_next, "membrane potential"),
                         Assert(probe.spike == spec.spike, "spike")]
            with m.If(probe.neuron == layer.size - 1):
                m.d.sync += sweep_slot.eq(Mux(sweep_slot == slots - 1, 0, sweep_slot + 1))

        added = source.taken & ~engine.i.payload.eot
        with m.If(source.taken & engine.i.payload.eot):
            m.d.sync += in_slot.eq(Mux(in_slot == slots - 1, 0, in_slot + 1))
        for j in range(layer.size):
            swept = probe.valid & (probe.neuron == j)
            with m.If(swept):
                m.d.sync += v[j].eq(spec.v_next)
            weight = Array(Const(int(w), wide) for w in weights[j])[engine.i.payload.addr]
            for p in range(slots):
                kept = Mux(swept & (sweep_slot == p), 0, current[p][j])
                m.d.sync += current[p][j].eq(
                    kept + Mux(added & (in_slot == p), weight, 0))

        m.d.comb += [
            # The worst-case sums (every presynaptic neuron of the extreme row spiking at once)
            # reach the LIF unit within the depth: the proof covers them.
            Cover(probe.valid & (spec.current == highest)),
            Cover(probe.valid & (spec.current == lowest)),
        ]
        return m

