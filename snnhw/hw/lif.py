"""The fixed-point LIF update unit (DESIGN.md §2), combinational."""

from amaranth.hdl import Array, Const, Module, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..network.format import Neuron, Reset
from .layout import membrane_bits

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
            v = Array(Const(level, v_shape) for level in levels)[self.state]
        if n.leak_shift:
            leaked = v - (v >> n.leak_shift)  # signed >> is arithmetic (floor)
        else:
            leaked = v
        total = leaked + self.current  # widens: exact, saturation happens once, below
        v_max, v_min = Const(n.v_max, v_shape), Const(n.v_min, v_shape)
        saturated = Mux(total > n.v_max, v_max, Mux(total < n.v_min, v_min, total))
        m.d.comb += self.spike.eq(saturated >= n.threshold)
        after_spike = saturated - n.threshold if n.reset is Reset.SUBTRACT else 0
        after_reset = Mux(self.spike, after_spike, saturated)
        if levels is None:
            m.d.comb += [self.v_next.eq(after_reset), self.state_next.eq(after_reset)]
        else:
            # Index of the nearest level: how many midpoints lie below V (2V > l_k + l_k+1; a
            # V on a midpoint stays with the lower level).
            above = [(after_reset * 2) > (low + high) for low, high in zip(levels, levels[1:])]
            index = sum(above[1:], above[0].as_unsigned())
            m.d.comb += [
                self.state_next.eq(index),
                self.v_next.eq(Array(Const(level, v_shape) for level in levels)[index]),
            ]
        return m
