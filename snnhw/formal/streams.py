"""The valid/ready stream rule, and a well-behaved source of input spike events.

The rule (DESIGN.md §3, Amaranth's ``lib.stream``): once ``valid`` is high it stays high, with
the same payload, until the cycle in which ``ready`` is high too. A ``start`` resets the core
(every engine sits behind a ``ResetInserter(start)``), so a stream stalled in a cycle with
``start`` may drop its event: a new sample begins.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assume, Const, Module, Signal, Value

__all__ = ["hold_until_ready", "EventSource"]


def hold_until_ready(m: Module, stream, *, start: Value, check, name: str) -> None:
    """State ``check`` (``Assert`` for a stream the RTL drives, ``Assume`` for one the
    environment drives) of the stream rule for ``stream`` (``valid``, ``ready``, ``payload``)."""
    stalled = Signal(name=f"{name}_stalled")  # valid and not ready in the previous cycle
    held = Signal.like(stream.payload.as_value(), name=f"{name}_held")
    m.d.sync += [stalled.eq(stream.valid & ~stream.ready & ~start),
                 held.eq(stream.payload.as_value())]
    m.d.comb += check(~stalled | (stream.valid & (stream.payload.as_value() == held)),
                      f"{name}: valid dropped or payload changed before ready")


class EventSource:
    """Constrains free inputs into one well-behaved sample of input spike events on ``stream``:
    per timestep, each presynaptic neuron (``addr < fan_in``) spikes at most once, the timestep
    closes with ``eot``, and after ``timesteps`` timesteps nothing more comes. The events
    themselves (which neurons spike) are the solver's choice.

    Parameters
    ----------
    m : Module
        Where the assumptions go.
    stream : the event stream interface (``valid``, ``ready``, ``payload.addr``, ``payload.eot``)
        Driven by the caller from the free inputs, except that ``valid`` may be forced
        (``gapless``).
    fan_in, timesteps : int
    restart : Value
        A new sample begins (the counters clear).
    gapless : bool
        ``valid`` is high from ``restart`` until the last ``eot`` is taken (no idle cycles, so
        that cycle counts measure the core alone); otherwise the solver chooses idle cycles.

    Members
    -------
    eots : Signal
        Timesteps sent so far.
    taken : Signal
        An event is taken this cycle.
    """

    def __init__(self, m: Module, stream, *, fan_in: int, timesteps: int, restart: Value,
                 gapless: bool):
        self.eots = Signal(range(timesteps + 1), name="source_eots")
        self.taken = Signal(name="source_taken")
        seen = Signal(fan_in, name="source_seen")  # neurons already sent this timestep
        payload = stream.payload
        m.d.comb += self.taken.eq(stream.valid & stream.ready)
        hold_until_ready(m, stream, start=restart, check=Assume, name="source")
        finished = self.eots == timesteps
        if gapless:
            # Until restart nothing is sent; from it, an event in every cycle until the end.
            active = Signal(name="source_active")
            with m.If(restart):
                m.d.sync += active.eq(1)
            m.d.comb += stream.valid.eq(active & ~finished)
        else:
            m.d.comb += Assume(~(stream.valid & finished))
        with m.If(stream.valid & ~payload.eot):
            m.d.comb += Assume(payload.addr < fan_in)
            m.d.comb += Assume(~Array(seen)[payload.addr])
        with m.If(restart):
            m.d.sync += [self.eots.eq(0), seen.eq(0)]
        with m.Elif(self.taken):
            with m.If(payload.eot):
                m.d.sync += [self.eots.eq(self.eots + 1), seen.eq(0)]
            with m.Else():
                m.d.sync += seen.eq(seen | (Const(1, fan_in) << payload.addr))
