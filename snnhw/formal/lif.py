"""The LIF unit against its specification, for every stored state and every input current.

:class:`LIFSpec` is DESIGN.md §2 (and the version-2 rules of the golden model's docstring)
written out again, on purpose without looking at :class:`~snnhw.hw.LIFUnit`'s structure: all
arithmetic in one width wide enough that nothing wraps, in the rules' order (the pending reset,
the leak, one sum, saturation as an explicit clamp, the compare, the reset), per-neuron
parameters as table lookups, and the state-level snap as a linear scan (the unit uses a binary
search over midpoints, a pipeline of registered stages and ROMs). The unit is a pipeline without stalls whose outputs
depend only on its inputs of :attr:`~snnhw.hw.LIFUnit.latency` cycles earlier, so a proof at
depth latency + 1 (:attr:`LIFEquivalence.depth`) covers every input: this is the exhaustive test
at widths simulation cannot enumerate (v_bits 24).
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Assume, Const, Cover, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..hw.lif import LIFUnit, per_neuron_count, state_shape
from ..network.format import Fire, Neuron, Reset, ResetTiming, Rounding

__all__ = ["LIFSpec", "LIFEquivalence"]


class LIFSpec(wiring.Component):
    """The neuron update of DESIGN.md §2 and, for a version-2 neuron, the steps of the golden
    model's docstring, from the decoded membrane potential ``v`` (no state index).

    Members
    -------
    v : In(signed(v_bits))
        V after the previous timestep.
    current : In(signed(current_bits))
        The timestep's exact synaptic sum.
    index : In(range(max(2, per-neuron values)))
        The neuron: selects its own threshold, beta and bias where the layer stores them.
    v_next : Out(signed(v_bits))
        V after leak, add, saturation, threshold, reset and (with state levels) the snap.
    level : Out(range(len(state_levels)))
        With state levels: the index of ``v_next`` among them.
    spike : Out(1)
    """

    def __init__(self, neuron: Neuron, current_bits: int):
        self.neuron = neuron
        # |beta * V + I + bias - thr| never wraps (beta <= 2**beta_frac_bits <= 2**beta_bits).
        self.wide = signed(max(neuron.v_bits, current_bits) + neuron.beta_bits + 4)
        levels = neuron.state_levels or (0,)
        super().__init__({
            "v": In(signed(neuron.v_bits)), "current": In(signed(current_bits)),
            "index": In(range(max(2, per_neuron_count(neuron)))),
            "v_next": Out(signed(neuron.v_bits)), "level": Out(range(max(2, len(levels)))),
            "spike": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.neuron

        def wide(name):
            return Signal(self.wide, name=name)

        def parameter(field):
            """The neuron's own value of ``field`` (a table lookup), or the layer's."""
            value = getattr(n, field)
            if not isinstance(value, tuple):
                return Const(value or 0, self.wide)
            return Array(Const(x, self.wide) for x in value)[self.index]

        thr, beta, bias = (wide(x) for x in ("thr", "beta", "bias"))
        m.d.comb += [thr.eq(parameter("threshold")), beta.eq(parameter("beta")),
                     bias.eq(parameter("bias"))]

        def fires(x):
            return x >= thr if n.fire is Fire.GE else x > thr

        timing, reset = n.reset_timing, n.reset
        v, leaked, total, saturated, after = (wide(x) for x in
                                              ("v_w", "leaked", "total", "saturated", "after"))
        # The reset the previous step left pending (deferred, immediate_snntorch): V compared
        # with the threshold, as stored.
        pending = Signal()
        if timing is not ResetTiming.IMMEDIATE:
            m.d.comb += pending.eq(fires(self.v))
        if timing is ResetTiming.DEFERRED and reset is Reset.ZERO:
            m.d.comb += v.eq(Mux(pending, 0, self.v))
        else:
            m.d.comb += v.eq(self.v)
        # V >> k of a signed value is the floor of V / 2**k; so is the beta product's.
        if n.beta is not None:
            half = 1 << (n.beta_frac_bits - 1) if n.beta_rounding is Rounding.NEAREST else 0
            product = wide("product")
            m.d.comb += product.eq(beta * v + half)
            m.d.comb += leaked.eq(product >> n.beta_frac_bits)
        else:
            m.d.comb += leaked.eq(v - (v >> n.leak_shift) if n.leak_shift else v)
        subtracted = Mux(pending, thr, 0) if (timing is ResetTiming.DEFERRED
                                              and reset is Reset.SUBTRACT) else 0
        m.d.comb += total.eq(leaked + self.current + bias - subtracted)
        m.d.comb += saturated.eq(Mux(total > n.v_max, n.v_max,
                                     Mux(total < n.v_min, n.v_min, total)))
        if timing is ResetTiming.IMMEDIATE_SNNTORCH:
            m.d.comb += self.spike.eq(fires(saturated - Mux(pending, thr, 0)))
        else:
            m.d.comb += self.spike.eq(fires(saturated))
        if timing is ResetTiming.DEFERRED or reset is Reset.NONE:
            reset_to = saturated  # deferred: the next step resets it
        else:
            reset_to = saturated - thr if reset is Reset.SUBTRACT else 0
        m.d.comb += after.eq(Mux(self.spike, reset_to, saturated))
        if n.state_levels is None:
            m.d.comb += self.v_next.eq(after)
            return m
        # Nearest level, ties to the lower one: scan upwards, take a level only when strictly
        # nearer than the best so far.
        best, best_index = Const(n.state_levels[0], self.wide), Const(0, self.level.shape())
        for k, level in enumerate(n.state_levels[1:], start=1):
            distance, best_distance = wide(f"d{k}"), wide(f"bd{k}")
            m.d.comb += [distance.eq(abs(after - level)), best_distance.eq(abs(after - best))]
            nearer = distance < best_distance
            best, best_index = Mux(nearer, level, best), Mux(nearer, k, best_index)
        m.d.comb += [self.v_next.eq(best), self.level.eq(best_index)]
        return m


class LIFEquivalence(wiring.Component):
    """Asserts that :class:`~snnhw.hw.LIFUnit` equals :class:`LIFSpec` for the free inputs.

    Parameters
    ----------
    neuron : Neuron
    current_bits : int
        The accumulator width of the layer (:attr:`~snnhw.plan.LayerPlan.acc_bits`).
    unit : callable
        Makes the unit under proof from (neuron, current_bits); a deliberately broken one shows
        that the proof can fail. The unit states its pipeline ``latency``.

    Attributes
    ----------
    depth : int
        The BMC depth that checks the unit's outputs for every input: its latency + 1.

    Members
    -------
    state : In(state_shape(neuron))
        Any stored state (with state levels: any valid level index, assumed).
    current : In(signed(current_bits))
        Any current.
    index : In(range(max(2, per-neuron values)))
        Any neuron of the layer (assumed), where it stores per-neuron parameters.
    """

    def __init__(self, neuron: Neuron, current_bits: int, *, unit=LIFUnit):
        self.neuron, self.current_bits = neuron, current_bits
        self.dut = unit(neuron, current_bits)
        self.depth = self.dut.latency + 1
        super().__init__({"state": In(state_shape(neuron)), "current": In(signed(current_bits)),
                          "index": In(range(max(2, per_neuron_count(neuron))))})

    def elaborate(self, platform):
        m = Module()
        n = self.neuron
        m.submodules.dut = dut = self.dut
        m.submodules.spec = spec = LIFSpec(n, self.current_bits)
        m.d.comb += [dut.state.eq(self.state), dut.current.eq(self.current),
                     dut.index.eq(self.index), spec.current.eq(self.current),
                     spec.index.eq(self.index)]
        m.d.comb += Assume(self.index < per_neuron_count(n))
        # The specification's answer to the inputs of `latency` cycles ago, and whether that
        # many cycles have passed since reset (before, the unit's outputs belong to no input).
        expected = {name: getattr(spec, name) for name in ("v_next", "level", "spike")}
        for stage in range(dut.latency):
            for name, value in expected.items():
                delayed = Signal.like(value, name=f"{name}_{stage}")
                m.d.sync += delayed.eq(value)
                expected[name] = delayed
        filled = Signal(range(dut.latency + 1))
        with m.If(filled != dut.latency):
            m.d.sync += filled.eq(filled + 1)
        if n.state_levels is None:
            m.d.comb += spec.v.eq(self.state)
            checks = [Assert(dut.state_next == expected["v_next"], "stored state")]
        else:
            # The memory only ever holds an index the unit wrote (or the index of 0).
            m.d.comb += Assume(self.state < len(n.state_levels))
            levels = Array(Const(level, signed(n.v_bits)) for level in n.state_levels)
            m.d.comb += spec.v.eq(levels[self.state])
            checks = [Assert(dut.state_next == expected["level"], "stored level index")]
        with m.If(filled == dut.latency):
            m.d.comb += checks + [
                Assert(dut.v_next == expected["v_next"], "membrane potential"),
                Assert(dut.spike == expected["spike"], "spike"),
                # A cover run shows that the assumption leaves both outcomes possible.
                Cover(expected["spike"]), Cover(~expected["spike"]),
            ]
        return m
