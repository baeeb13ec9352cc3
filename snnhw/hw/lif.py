"""The fixed-point LIF update unit (DESIGN.md §2), pipelined."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..network.format import Fire, Neuron, Reset, ResetTiming, Rounding
from ..plan import membrane_bits
from ..plan.cycles import lif_latency

__all__ = ["LIFUnit", "state_shape", "zero_state", "per_neuron_count"]


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

    The update is the golden model's (:func:`~snnhw.golden.model.lif_step`, steps 1-7 of its
    module docstring), with every version-2 feature of the format: the ``>`` comparison, a bias
    added every timestep, reset ``none``, the deferred and immediate_snntorch reset timings (the
    pending reset is recomputed from the stored V, so the membrane memory holds nothing more),
    the leak as a fixed-point multiply by beta (floor or nearest), and per-neuron threshold,
    beta and bias (ROMs indexed by :attr:`index`, read in the unit's first stage).

    With a state codebook (``neuron.state_levels``) the stored state is a level index: the unit
    decodes it through the level LUT, and snaps the new V to the nearest level (ties to the
    lower one) and encodes its index, so the membrane memory holds only log2(levels) bits.

    The unit is a pipeline without stalls, so that no path crosses more than one short
    arithmetic step: the outputs belong to the inputs of :attr:`latency` cycles earlier. Its
    stages, each only where the neuron needs it: fetch (decode the level, read the per-neuron
    parameters), pending (the reset still pending from the previous step, the bias added to
    the current), multiply (beta * V), leak (and the bias, or the deferred subtraction, added to
    the current), add, then compare the sum with the saturation bounds and the threshold (in
    parallel: a sum above the range compares as V's top value does), then the outputs select
    the saturated or reset V from those registered results (and snap it to a level, after one
    more register).

    Parameters
    ----------
    neuron : Neuron
        Threshold, leak, reset, membrane width, state levels and version-2 fields.
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
    index : In(range(max(2, per-neuron values)))
        Which neuron this is: selects its per-neuron threshold, beta and bias (unused when the
        layer has none).
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
            "index": In(range(max(2, per_neuron_count(neuron)))),
            "state_next": Out(state_shape(neuron)),
            "v_next": Out(signed(neuron.v_bits)),
            "spike": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.neuron
        v_shape = signed(n.v_bits)
        levels = n.state_levels
        fire = (lambda x, thr: x >= thr) if n.fire is Fire.GE else (lambda x, thr: x > thr)
        timing = n.reset_timing

        def stage(values):
            """Every value of ``values`` a cycle later (constants, and None, stay)."""
            return {name: _delayed(m, value, name) if isinstance(value, Value) else value
                    for name, value in values.items()}

        # Values that travel down the pipeline until a stage uses them (integers are constants).
        carry = {"current": self.current, "thr": n.threshold, "beta": n.beta, "bias": n.bias,
                 "pending": 0}
        # Fetch (state codebook or per-neuron parameters): the level and the ROM reads.
        v = self.state
        roms = {field: shape for field, shape in (("thr", v_shape),
                                                   ("beta", unsigned(max(1, n.beta_bits))),
                                                   ("bias", v_shape))
                if isinstance(getattr(n, _FIELDS[field]), tuple)}
        if levels is not None or roms:
            decoded = v if levels is None else Array(Const(level, v_shape)
                                                     for level in levels)[self.state]
            v = _delayed(m, decoded, "v_fetched")
            carry = stage({name: value for name, value in carry.items() if name not in roms})
            for field, shape in roms.items():
                rom = Memory(shape=shape, depth=max(2, per_neuron_count(n)),
                             init=getattr(n, _FIELDS[field]))
                m.submodules[f"{field}_rom"] = rom
                port = rom.read_port()
                m.d.comb += port.addr.eq(self.index)
                carry[field] = port.data  # a synchronous read: in step with the fetched V
        # Pending (deferred, immediate_snntorch): the reset the previous step left, from the
        # stored V; a deferred reset to zero happens here, before the leak. The bias joins the
        # current, so the leak stage has a single add on that side.
        if timing is not ResetTiming.IMMEDIATE:
            pending = fire(v, carry["thr"])
            if timing is ResetTiming.DEFERRED and n.reset is Reset.ZERO:
                v = Mux(pending, 0, v)
            v = _delayed(m, v, "v_pending")
            carry["pending"] = pending
            carry["current"] = _plus(carry["current"], carry.pop("bias"))
            carry = stage(carry)
        # Multiply (beta): the product, registered before its rounding.
        beta = carry.pop("beta")
        if beta is not None:
            v = _delayed(m, v * beta, "product")
            carry = stage(carry)
        # Leak; beside it the current takes the bias (or loses a deferred subtraction), and the
        # immediate_snntorch threshold doubles for a neuron still over it.
        if beta is not None:
            frac = n.beta_frac_bits
            rounded = v + (1 << (frac - 1)) if n.beta_rounding is Rounding.NEAREST else v
            leaked = rounded >> frac  # >> is floor
        elif n.leak_shift:
            leaked = v - (v >> n.leak_shift)
        else:
            leaked = v
        current, thr, pending = carry["current"], carry["thr"], carry["pending"]
        if "bias" in carry:
            current = _plus(current, carry["bias"])
        if timing is ResetTiming.DEFERRED and n.reset is Reset.SUBTRACT:
            current = current - Mux(pending, thr, 0)
        thr_fire = thr  # what the sum must reach (or pass) to fire
        if timing is ResetTiming.IMMEDIATE_SNNTORCH:
            thr_fire = Mux(pending, thr * 2, thr)
        leaked = _delayed(m, leaked, "leaked")
        carry = stage({"current": current, "thr": thr, "thr_fire": thr_fire})
        # Add: widens, exact; saturation happens once, below.
        total = _delayed(m, leaked + carry.pop("current"), "total")
        carry = stage(carry)
        # Compare: the saturation bounds and the threshold, side by side. A sum above the range
        # compares as V's top value does; within the range the sum fits v_bits, and so does the
        # sum less the threshold when the neuron fires.
        thr, thr_fire = carry["thr"], carry["thr_fire"]
        above, below, fires = (_delayed(m, total > n.v_max, "above"),
                               _delayed(m, total < n.v_min, "below"),
                               _delayed(m, fire(total, thr_fire), "fires"))
        in_range, minus = Signal(v_shape), Signal(v_shape)
        m.d.sync += [in_range.eq(total), minus.eq(total - thr)]
        fires_at_top = _const_or_delayed(m, fire(n.v_max, thr_fire), "fires_at_top")
        minus_at_top = _const_or_delayed(m, n.v_max - thr, "minus_at_top", v_shape)
        # Saturate and reset: selects only. A firing neuron is never below the range (the
        # threshold is positive). The top bound: with a threshold that V's top value reaches,
        # a sum above the range always fires, so only the reset V sees it.
        spike = fires if fires_at_top is True else Mux(above, fires_at_top, fires)
        saturated = Mux(below, n.v_min, in_range)
        resets_now = n.reset is not Reset.NONE and timing is not ResetTiming.DEFERRED
        if fires_at_top is not True or not resets_now:
            saturated = Mux(above, n.v_max, saturated)
        if not resets_now:
            after_spike = saturated
        elif n.reset is Reset.SUBTRACT:
            after_spike = Mux(above, minus_at_top, minus)
        else:
            after_spike = Const(0, v_shape)
        after_reset = Signal(v_shape)
        if levels is None:
            m.d.comb += after_reset.eq(Mux(spike, after_spike, saturated))
            m.d.comb += [
                self.v_next.eq(after_reset), self.state_next.eq(after_reset),
                self.spike.eq(spike),
            ]
        else:
            # Snap, a register later (the level search is a comparator and a mux tree deep).
            m.d.sync += after_reset.eq(Mux(spike, after_spike, saturated))
            m.d.comb += self.spike.eq(_delayed(m, spike, "spike_s"))
            index, level = _nearest_level(after_reset, levels, self.state_next.shape(), v_shape)
            m.d.comb += [self.state_next.eq(index), self.v_next.eq(level)]
        return m


#: The unit's names of the per-neuron fields, and the Neuron fields they come from.
_FIELDS = {"thr": "threshold", "beta": "beta", "bias": "bias"}


def per_neuron_count(neuron: Neuron) -> int:
    """How many neurons have their own parameters (the length of a per-neuron array), or 1."""
    for field in _FIELDS.values():
        value = getattr(neuron, field)
        if isinstance(value, tuple):
            return len(value)
    return 1


def _plus(value, bias):
    """``value + bias``, or ``value`` itself for a zero bias (no adder)."""
    return value if isinstance(bias, int) and bias == 0 else value + bias


def _const_or_delayed(m, value, name, shape=None):
    """A Python value (computed from constants) as it is; a Value a cycle later."""
    if isinstance(value, (bool, int)):
        return value if shape is None else Const(value, shape)
    return _delayed(m, value, name)


def _delayed(m, value, name):
    """``value`` (a Value or an expression, in its own shape) a cycle later."""
    reg = Signal(Value.cast(value).shape(), name=name)
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
