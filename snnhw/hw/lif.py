"""The fixed-point LIF update unit (DESIGN.md §2), combinational."""

from amaranth.hdl import Const, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..network.format import Neuron, Reset

__all__ = ["LIFUnit"]


class LIFUnit(wiring.Component):
    """One neuron's update: leak, add the timestep's input current, saturate, fire, reset.

    Parameters
    ----------
    neuron : Neuron
        Threshold, leak shift, reset mode and membrane width.
    current_bits : int
        Signed width of the summed input current (wide enough never to overflow).

    Members
    -------
    v : In(signed(v_bits))
        Membrane potential after the previous timestep.
    current : In(signed(current_bits))
        Exact sum of this timestep's synaptic inputs.
    v_next : Out(signed(v_bits))
        Membrane potential after this timestep's update and reset.
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
            "v": In(signed(neuron.v_bits)),
            "current": In(signed(current_bits)),
            "v_next": Out(signed(neuron.v_bits)),
            "spike": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.neuron
        if n.leak_shift:
            leaked = self.v - (self.v >> n.leak_shift)  # signed >> is arithmetic (floor)
        else:
            leaked = self.v
        total = leaked + self.current  # widens: exact, saturation happens once, below
        v_max, v_min = Const(n.v_max, signed(n.v_bits)), Const(n.v_min, signed(n.v_bits))
        saturated = Mux(total > n.v_max, v_max, Mux(total < n.v_min, v_min, total))
        m.d.comb += self.spike.eq(saturated >= n.threshold)
        after_spike = saturated - n.threshold if n.reset is Reset.SUBTRACT else 0
        m.d.comb += self.v_next.eq(Mux(self.spike, after_spike, saturated))
        return m
