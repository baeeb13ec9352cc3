"""The fixed-point LIF update unit (DESIGN.md §2), pipelined."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..network.format import Neuron, Reset
from ..plan import membrane_bits
from ..plan.cycles import lif_latency

__all__ = ["LIFUnit", "state_shape", "zero_state"]


def state_shape(neuron: Neuron):
    """What the membrane memory stores per neuron: V itself, or the index of its state level."""
    if neuron.state_levels is None:
        return signed(neuron.v_bits)
    return unsigned(membrane_bits(neuron))


def zero_state(neuron: Neuron) -> int:
    """The stored word for V = 0 (the state of every neuron when a sample starts)."""
    return 0 if neuron.state_levels is None else neuron.state_levels.index(0)


class LIFUnit(wiring.Component):
    """One neuron's update: leak, add the timestep's input current, saturate, fire, reset.

    With a state codebook (``neuron.state_levels``) the stored state is a level index: the unit
    decodes it through the level LUT, and snaps the new V to the nearest level (ties to the
    lower one) and encodes its index, so the membrane memory holds only log2(levels) bits.

    The unit is a pipeline without stalls, so that no path crosses more than one short
    arithmetic step: the outputs belong to the inputs of :attr:`latency` cycles earlier. Its
    stages: (decode the level, with a state codebook), leak, add, then compare the sum with the
    saturation bounds and the threshold (in parallel: with the threshold inside the V range,
    ``saturated >= threshold`` is ``total >= threshold``), then the outputs select the
    saturated or reset V from those registered results (and snap it to a level, after one more
    register).

    Parameters
    ----------
    neuron : Neuron
        Threshold, leak shift, reset mode, membrane width and optional state levels.
    current_bits : int
        Signed width of the summed input current (wide enough never to overflow).

    Attributes
    ----------
    latency : int
        Cycles from an input to its outputs.

    Members
    -------
    state : In(state_shape(neuron))
        Stored membrane state after the previous timestep.
    current : In(signed(current_bits))
        Exact sum of this timestep's synaptic inputs.
    state_next : Out(state_shape(neuron))
        Membrane state to store after this timestep's update.
    v_next : Out(signed(v_bits))
        Membrane potential after this timestep's update (and reset, and snap).
    spike : Out(1)
        The neuron fires this timestep.
    """

    def __init__(self, neuron: Neuron, current_bits: int):
        if not isinstance(neuron, Neuron):
            raise TypeError(f"Neuron parameters must be a Neuron, not {neuron!r}")
        if not isinstance(current_bits, int) or current_bits < 1:
            raise ValueError(f"Current width must be a positive integer, not {current_bits!r}")
        self.neuron = neuron
        self.current_bits = current_bits
        self.latency = lif_latency(neuron)
        super().__init__({
            "state": In(state_shape(neuron)),
            "current": In(signed(current_bits)),
            "state_next": Out(state_shape(neuron)),
            "v_next": Out(signed(neuron.v_bits)),
            "spike": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.neuron
        v_shape = signed(n.v_bits)
        levels = n.state_levels
        current = self.current
        # Decode (state codebook only): the level of the stored index.
        if levels is None:
            v = self.state
        else:
            v = Signal(v_shape)
            m.d.sync += v.eq(Array(Const(level, v_shape) for level in levels)[self.state])
            current = _delayed(m, current, "current_d")
        # Leak.
        leaked = Signal(v_shape)
        m.d.sync += leaked.eq(v - (v >> n.leak_shift) if n.leak_shift else v)  # >> is floor
        current = _delayed(m, current, "current_l")
        # Add: widens, exact; saturation happens once, below.
        total = Signal(signed(max(n.v_bits, self.current_bits) + 1))
        m.d.sync += total.eq(leaked + current)
        # Compare: the saturation bounds and the threshold, side by side. Within the V range the
        # sum fits v_bits, and so does the sum less the threshold when the neuron fires.
        above, below, fires = Signal(), Signal(), Signal()
        in_range, minus = Signal(v_shape), Signal(v_shape)
        v_min = Const(n.v_min, v_shape)
        fires_if = total >= n.threshold  # the format keeps the threshold within the V range
        m.d.sync += [
            above.eq(total > n.v_max), below.eq(total < n.v_min), fires.eq(fires_if),
            in_range.eq(total), minus.eq(total - n.threshold),
        ]
        # Saturate and reset: selects only. A firing neuron is never below the range, and a sum
        # above it always fires (the threshold is at most v_max), so only a firing neuron sees
        # the top bound: as v_max - threshold after a subtract reset.
        saturated = Mux(below, v_min, in_range)
        if n.reset is Reset.SUBTRACT:
            after_spike = Mux(above, Const(n.v_max - n.threshold, v_shape), minus)
        else:
            after_spike = Const(0, v_shape)
        after_reset = Signal(v_shape)
        if levels is None:
            m.d.comb += after_reset.eq(Mux(fires, after_spike, saturated))
            m.d.comb += [
                self.v_next.eq(after_reset), self.state_next.eq(after_reset),
                self.spike.eq(fires),
            ]
        else:
            # Snap, a register later (the level search is a comparator and a mux tree deep).
            m.d.sync += after_reset.eq(Mux(fires, after_spike, saturated))
            m.d.comb += self.spike.eq(_delayed(m, fires, "fires_s"))
            index, level = _nearest_level(after_reset, levels, self.state_next.shape(), v_shape)
            m.d.comb += [self.state_next.eq(index), self.v_next.eq(level)]
        return m


def _delayed(m, value, name):
    """``value`` a cycle later."""
    reg = Signal.like(value, name=name)
    m.d.sync += reg.eq(value)
    return reg


def _nearest_level(v, levels, index_shape, v_shape):
    """Return (index, level) of the level nearest to ``v``, a V halfway between two levels taking
    the lower one: a balanced binary search, log2(levels) comparators deep and len(levels) - 1
    comparators in all (a sum of one comparator per midpoint takes minutes to generate at 256
    levels)."""
    def search(lo, hi):  # the answer is known to lie in levels[lo..hi]
        if lo == hi:
            return Const(lo, index_shape), Const(levels[lo], v_shape)
        mid = (lo + hi + 1) // 2
        # V is nearer levels[mid] than levels[mid - 1] iff 2V > their sum, which for an integer
        # V is V > floor(sum / 2); the midpoints rise with k, so this splits the range.
        upper = v > (levels[mid - 1] + levels[mid]) // 2
        (high_index, high_level), (low_index, low_level) = search(mid, hi), search(lo, mid - 1)
        return Mux(upper, high_index, low_index), Mux(upper, high_level, low_level)

    return search(0, len(levels) - 1)
