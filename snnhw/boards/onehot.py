"""One-hot control for the board logic: a state machine with a flip-flop per state, and an
AND-OR select by one-hot bits (short next-state logic, for the clocks the boards run at)."""

from contextlib import contextmanager

from amaranth.hdl import Const, Module, Mux, Signal

__all__ = ["OneHotFSM", "one_hot_select"]


class OneHotFSM:
    """A state machine with a flip-flop per state, for short next-state logic.

    Amaranth's ``m.FSM`` encodes the state in binary, and yosys keeps that encoding (the
    register has an initial value), so every state's decode costs LUT levels before its
    conditions even start. Here a state is active when its own bit is set: a transition is
    two bit assignments. A state's transitions must be exclusive (``If``/``Elif``/``Else``),
    since a later one does not cancel an earlier one as ``m.next`` does.
    """

    def __init__(self, m: Module, init: str):
        self.m, self.init = m, init
        self.bits = {}
        self.current = None

    def __getitem__(self, name: str) -> Signal:
        """The bit of state ``name``: set while the machine is in it."""
        if name not in self.bits:
            self.bits[name] = Signal(init=name == self.init, name=f"state_{name}")
        return self.bits[name]

    @contextmanager
    def state(self, name: str):
        """The statements of state ``name`` (only while its bit is set)."""
        with self.m.If(self[name]):
            self.current = name
            yield
            self.current = None

    def goto(self, name: str):
        """Leave the current state for ``name`` (at the next clock edge)."""
        if name != self.current:
            self.m.d.sync += [self[self.current].eq(0), self[name].eq(1)]


def one_hot_select(choices):
    """The value of the choice whose bit is set (at most one is): an AND-OR, no priority."""
    selected = Const(0)
    for bit, value in choices:
        selected = selected | Mux(bit, value, 0)
    return selected
