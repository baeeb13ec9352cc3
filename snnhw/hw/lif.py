"""The fixed-point LIF update unit (DESIGN.md §2), combinational."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..network.format import Neuron, Reset
from ..plan import membrane_bits

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

    Parameters
    ----------
    neuron : Neuron
        Threshold, leak shift, reset mode, membrane width and optional state levels.
    current_bits : int
        Signed width of the summed input current (wide enough never to overflow).

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
        if levels is None:
            v = self.state
        else:
            v = Signal(v_shape)
            m.d.comb += v.eq(Array(Const(level, v_shape) for level in levels)[self.state])
        if n.leak_shift:
            leaked = v - (v >> n.leak_shift)  # signed >> is arithmetic (floor)
        else:
            leaked = v
        total = leaked + self.current  # widens: exact, saturation happens once, below
        v_max, v_min = Const(n.v_max, v_shape), Const(n.v_min, v_shape)
        # Named signals, not expressions: an expression used twice is generated twice, and the
        # level search below compares V with up to 255 midpoints.
        saturated = Signal(v_shape)
        m.d.comb += saturated.eq(Mux(total > n.v_max, v_max, Mux(total < n.v_min, v_min, total)))
        m.d.comb += self.spike.eq(saturated >= n.threshold)
        after_spike = saturated - n.threshold if n.reset is Reset.SUBTRACT else 0
        after_reset = Signal(v_shape)
        m.d.comb += after_reset.eq(Mux(self.spike, after_spike, saturated))
        if levels is None:
            m.d.comb += [self.v_next.eq(after_reset), self.state_next.eq(after_reset)]
        else:
            index, level = _nearest_level(after_reset, levels, self.state_next.shape(), v_shape)
            m.d.comb += [self.state_next.eq(index), self.v_next.eq(level)]
        return m


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
