"""The host bridge: turns protocol bytes into core events and the core's spikes into a result.

See :mod:`snnhw.boards.protocol` for the byte protocol it implements.
"""

from contextlib import contextmanager

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..hw.encoder import FeatureEncoder
from ..hw.engine import EventLayout
from ..plan import CYCLE_BITS, TIMESTEP_BITS, CorePlan
from . import protocol
from .onehot import OneHotFSM, one_hot_select

__all__ = ["Bridge"]

COUNT_BITS = 16  #: a count never exceeds the timesteps of a sample (u16)


class Bridge(wiring.Component):
    """Speaks the protocol on a pair of byte streams and drives a :class:`~snnhw.hw.core.Core`.

    On ``'S'`` it clears the output spike counts, pulses ``start``, forwards each received input
    event to the core, and counts the core's output spikes as they come; once the core is done it
    finds the most frequent output (ties to the lowest index) and sends the result. ``'I'`` is
    answered from a constant. While a command's bytes are expected, ``timeout`` cycles without a
    byte abandon it (the core is restarted with zero timesteps). ``'W'`` forwards the load image
    to the core's synapse loader, restarting it with the image's first byte. With an encoder in
    the network, ``'X'`` passes the feature bytes to a :class:`~snnhw.hw.encoder.FeatureEncoder`
    whose events go to the core instead of the host's. Bytes that are no command where a
    command is expected are ignored.

    Parameters
    ----------
    plan : CorePlan
        The core's plan: the network's sizes, the lane count and the large-RAM layers for the
        identity answer, and the size of the load image that ``'W'`` forwards.
    timeout : int
        Cycles of silence that abandon a command.

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the host.
    tx : Out(stream.Signature(8))
        Bytes to the host.
    overrun, framing : In(1)
        Receive errors (pulses), reported in the status byte.
    events : Out(stream.Signature(EventLayout(plan.input_addr_bits)))
        Input events to the core's ``i``.
    spikes : In(stream.Signature(EventLayout(plan.output_addr_bits)))
        Output events from the core's ``o``.
    start : Out(1)
        To the core's ``start``.
    timesteps : Out(16)
        To the core's ``timesteps``.
    done : In(1)
        From the core's ``done``.
    cycles : In(32)
        From the core's ``cycles``.
    pred : Out(range(output_size))
        The last predicted class (for LEDs).
    load : Out(stream.Signature(8))
        To the core's ``load``.
    load_begin : Out(1)
        To the core's ``load_begin``.
    loaded : In(1)
        From the core's ``loaded`` (tie to 1 when nothing is loaded at run time).
    boot : In(3)
        How the synapses were booted, for the identity: bit 0 loaded from flash, bit 1 the flash
        held no image for this network, bit 2 its image failed the CRC
        (:mod:`snnhw.boards.flash`; 0 without a flash).
    """

    def __init__(self, plan: CorePlan, timeout: int):
        if not isinstance(plan, CorePlan):
            raise TypeError(f"Plan must be a CorePlan, not {plan!r}")
        if not isinstance(timeout, int):
            raise TypeError(f"Timeout must be an integer, not {timeout!r}")
        if timeout < 1:
            raise ValueError(f"Timeout must be a positive integer, not {timeout!r}")
        network = plan.network
        if network.input_size > protocol.MAX_INPUTS:
            raise ValueError(f"Input size must be at most {protocol.MAX_INPUTS}, "
                             f"not {network.input_size!r}")
        self.plan, self.network, self.timeout = plan, network, timeout
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "overrun": In(1),
            "framing": In(1),
            "events": Out(stream.Signature(EventLayout(plan.input_addr_bits))),
            "spikes": In(stream.Signature(EventLayout(plan.output_addr_bits))),
            "start": Out(1),
            "timesteps": Out(TIMESTEP_BITS),
            "done": In(1),
            "cycles": In(CYCLE_BITS),
            "pred": Out(plan.output_addr_bits),
            "load": Out(stream.Signature(8)),
            "load_begin": Out(1),
            "loaded": In(1),
            "boot": In(3),
        })

    def elaborate(self, platform):
        m = Module()
        outputs, inputs = self.network.output_size, self.plan.input_size  # the core's inputs
        # The identity's last byte is the loaded flag and the boot bits; the rest is constant.
        identity = protocol.identity_bytes(self.plan)[:-1]
        identity_size = protocol.IDENTITY_SIZE

        m.submodules.counts = counts = Memory(shape=COUNT_BITS, depth=max(2, outputs), init=[])
        count_wr = counts.write_port()
        count_rd = counts.read_port()

        steps = Signal(TIMESTEP_BITS)  # timesteps of the sample; then end-of-timesteps to go
        low = Signal(8)  # first byte of a u16
        # Status flags (protocol.Status), sticky until the next sample.
        bad_input, overrun, framing, not_loaded = Signal(), Signal(), Signal(), Signal()
        status = Cat(bad_input, overrun, framing, not_loaded)
        index = Signal(range(outputs + 1))  # clear / argmax / send sweeps over the outputs
        # The states clear `index` (`index_clear`) or step it (`index_step`) and read its
        # compares as flip-flops updated with it: `index_last` (== outputs - 1) and `index_end`
        # (== outputs). Compares of `index` into its own enable were the iCE40's critical path.
        index_clear, index_step = Signal(), Signal()
        index_last, index_end = Signal(), Signal()
        best = Signal(COUNT_BITS)
        pred = Signal.like(self.pred)
        read = Signal()  # count_rd.data holds the count of output `read_index`
        read_index = Signal.like(index)
        compare = Signal()  # `count` holds the count of output `compared`
        compared = Signal.like(index)
        count = Signal(COUNT_BITS)
        decide = Signal()  # the compare's halves below hold `count` against `best`
        above_high, equal_high, above_low = Signal(), Signal(), Signal()
        greater = Signal()  # `count` > `best`, registered: take `count` as the best
        # Bytes to send, LSB first: the widest reply but the identity (pred and cycles), which
        # is sent from constants by byte number instead (a 19-byte shift register costs more).
        word = Signal(8 * 6)
        load_size = self.plan.load_size
        load_left = Signal(range(max(2, load_size + 1)))  # bytes of the load image to come
        # `load_left` == `load_size` as a flip-flop (set with it, cleared at the first byte), and
        # `load_left` == 1 compared in a register: `load_left` changes in LOAD_PUSH, at least a
        # cycle (LOAD_BYTE) before LOAD_PUSH reads it again. Wide compares into the loader's
        # and the state's enables were the MNIST build's critical path.
        load_first, load_last = Signal(), Signal()
        m.d.sync += load_last.eq(load_left == 1)
        left = Signal(range(max(len(word) // 8, identity_size) + 1))  # bytes still to send
        left_one = Signal()  # `left` == 1 as a flip-flop set with `left`: the send states' exit
        # Cycles without a byte; its compare with the timeout is registered (`silent`), so the
        # count runs one past the timeout before the command is abandoned. A byte taken in the
        # cycle the count reaches the timeout clears it (only a receiving state counts).
        silence = Signal(range(self.timeout + 2))
        silent = Signal()
        # The event received from the host; the core gets it, or the encoder's ('X').
        event = Signal(EventLayout(self.plan.input_addr_bits))
        event_valid = Signal()
        encoder = self.network.encoder
        encoding = Signal()  # this sample's events come from the encoder
        from_host = [self.events.payload.eq(event), self.events.valid.eq(event_valid)]
        if encoder is None:
            m.d.comb += from_host
        else:
            m.submodules.encoder = features = FeatureEncoder(
                encoder, inputs, self.network.timesteps, self.plan.input_addr_bits)
            features_left = Signal(range(inputs + 1))
            with m.If(encoding):
                m.d.comb += [self.events.payload.eq(features.events.payload),
                             self.events.valid.eq(features.events.valid),
                             features.events.ready.eq(self.events.ready)]
            with m.Else():
                m.d.comb += from_host

        with m.If(self.overrun):
            m.d.sync += overrun.eq(1)
        with m.If(self.framing):
            m.d.sync += framing.eq(1)

        # -- count output spikes: read the count as the event arrives, write it back a cycle later
        pending = Signal()
        pending_addr = Signal.like(self.spikes.payload.addr)
        m.d.comb += self.spikes.ready.eq(~pending)
        m.d.sync += pending.eq(0)
        with m.If(self.spikes.valid & ~pending & ~self.spikes.payload.eot):
            m.d.sync += [pending.eq(1), pending_addr.eq(self.spikes.payload.addr)]
        with m.If(pending):
            m.d.comb += [count_wr.addr.eq(pending_addr), count_wr.data.eq(count_rd.data + 1),
                         count_wr.en.eq(1)]
        m.d.comb += count_rd.addr.eq(self.spikes.payload.addr)  # sweeps below override this

        # -- argmax: compare the count read two cycles before (from a register, not the RAM)
        # by halves, combine the halves a cycle later, and take the count as the best a cycle
        # after that: the 16-bit compare drives neither the best's enables (the iCE40's
        # critical path) nor, whole, one register (five LUTs). A read every third cycle, so
        # each compare sees the best that the one before it chose.
        half = COUNT_BITS // 2
        m.d.sync += [read.eq(0), compare.eq(read), decide.eq(compare),
                     above_high.eq(count[half:] > best[half:]),
                     equal_high.eq(count[half:] == best[half:]),
                     above_low.eq(count[:half] > best[:half]),
                     greater.eq(decide & (above_high | equal_high & above_low))]
        with m.If(read):
            m.d.sync += [compared.eq(read_index), count.eq(count_rd.data)]
        with m.If(greater):
            m.d.sync += [best.eq(count), pred.eq(compared)]

        # -- the received byte, in a register with its command decoded: the state machine's
        # next state and the wide `word` register depend on flags, not on an 8-bit compare.
        rx_valid = Signal()
        rx_byte = Signal(8)
        rx_take = Signal()  # the state consumes the byte in rx_byte this cycle
        commands = (protocol.CMD_SAMPLE, protocol.CMD_FEATURES, protocol.CMD_IDENTIFY,
                    protocol.CMD_LOAD)
        rx_is = {cmd: Signal(name=f"rx_is_{chr(cmd)}") for cmd in commands}
        # An event's input is out of range (>= inputs) when its high byte's 7 address bits are
        # above those of `inputs`, or equal with the low byte at least `inputs`' low byte.
        high_above, high_equal, low_at_least = Signal(), Signal(), Signal()
        m.d.comb += self.rx.ready.eq(~rx_valid)
        m.d.sync += silent.eq((silence == self.timeout) & ~rx_valid)
        with m.If(rx_valid & rx_take):
            m.d.sync += rx_valid.eq(0)
        with m.If(~rx_valid & self.rx.valid):
            m.d.sync += [rx_valid.eq(1), rx_byte.eq(self.rx.payload)]
            m.d.sync += [flag.eq(self.rx.payload == cmd) for cmd, flag in rx_is.items()]
            m.d.sync += [high_above.eq(self.rx.payload[:7] > (inputs >> 8)),
                         high_equal.eq(self.rx.payload[:7] == (inputs >> 8))]

        # start and timesteps leave through registers: the core's reset is a wide net, so it
        # should not also carry the FSM's state decode.
        m.d.sync += [self.start.eq(0), self.timesteps.eq(steps)]

        # The state's compares with 0 and 1, registered: `steps` changes at least a cycle
        # before START and PUSH read them.
        steps_zero, last_step = Signal(), Signal()
        m.d.sync += [steps_zero.eq(steps == 0), last_step.eq(steps == 1)]
        fsm = OneHotFSM(m, "IDLE")

        @contextmanager
        def receive(state):
            """A state that waits for a byte of a command; a long silence abandons the command."""
            with fsm.state(state):
                m.d.comb += rx_take.eq(1)
                m.d.sync += silence.eq(silence + 1)
                with m.If(rx_valid):
                    m.d.sync += silence.eq(0)
                    yield rx_byte
                with m.Elif(silent):
                    fsm.goto("ABANDON")

        # `word` and `left` are loaded by states of their own (IDENTIFY, LOAD_REPLY, RESULT,
        # LOAD_COUNT, TAIL) and shifted by the send states; their next value is an AND-OR of
        # those states' bits (assigned after the state machine), not a multiplexer per state.
        fills = []  # (the state's bit, word, left)
        # In a send state, as one flip-flop: each fill state goes to its send state, and each
        # send state leaves on the last byte. The OR of five state bits into the enables of
        # `word` and `left` (55 flip-flops, through a global buffer) was the path after the
        # argmax's.
        sending = Signal()

        def fill(value, size):
            """The current state loads ``value`` into ``word``, to send its ``size`` low bytes."""
            fills.append((fsm[fsm.current], value, size))

        def send(state, then, payload=word[:8]):
            """A state that sends ``left`` bytes: the low bytes of ``word``, or ``payload``."""
            with fsm.state(state):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(payload)]
                with m.If(self.tx.ready & left_one):
                    fsm.goto(then)

        with fsm.state("IDLE"):
            m.d.comb += [rx_take.eq(1), index_clear.eq(1)]
            m.d.sync += silence.eq(0)
            with m.If(rx_valid & rx_is[protocol.CMD_SAMPLE]):
                m.d.sync += [bad_input.eq(0), overrun.eq(0), framing.eq(0),
                             not_loaded.eq(~self.loaded), encoding.eq(0)]
                fsm.goto("STEPS_LOW")
            if encoder is not None:
                with m.Elif(rx_valid & rx_is[protocol.CMD_FEATURES]):
                    m.d.comb += features.begin.eq(1)
                    m.d.sync += [bad_input.eq(0), overrun.eq(0), framing.eq(0),
                                 not_loaded.eq(~self.loaded), encoding.eq(1),
                                 steps.eq(self.network.timesteps), features_left.eq(inputs)]
                    fsm.goto("CLEAR")
            with m.Elif(rx_valid & rx_is[protocol.CMD_IDENTIFY]):
                fsm.goto("IDENTIFY")
            with m.Elif(rx_valid & rx_is[protocol.CMD_LOAD]):
                m.d.sync += [load_left.eq(load_size), load_first.eq(1)]
                fsm.goto("LOAD_BYTE" if load_size else "LOAD_REPLY")

        # The identity's bytes by `left` (bytes still to send, the last one at 1), looked up a
        # byte ahead into a register (`ahead` is `left` - 1): the lookup into the transmit
        # register was the example's critical path at P = 2.
        identity_table = Array([Const(0, 8), Cat(self.loaded, self.boot, Const(0, 4))]
                               + [Const(byte, 8) for byte in reversed(identity)])
        identity_byte, ahead = Signal(8), Signal.like(left)
        with fsm.state("IDENTIFY"):
            fill(Const(0), identity_size)
            m.d.sync += [identity_byte.eq(identity_table[identity_size]),
                         ahead.eq(identity_size - 1)]
            fsm.goto("SEND_IDENTITY")

        send("SEND_IDENTITY", "IDLE", identity_byte)
        with m.If(fsm["SEND_IDENTITY"] & self.tx.ready):
            m.d.sync += [identity_byte.eq(identity_table[ahead]), ahead.eq(ahead - 1)]

        with receive("LOAD_BYTE") as byte:
            # The loader restarts with the image's first byte, not with the 'W': a stray
            # 'W' followed by a silence leaves the synapses loaded.
            with m.If(load_first):
                m.d.comb += self.load_begin.eq(1)
            m.d.sync += self.load.payload.eq(byte)
            fsm.goto("LOAD_PUSH")

        with fsm.state("LOAD_PUSH"):
            m.d.comb += self.load.valid.eq(1)
            with m.If(self.load.ready):
                m.d.sync += [load_left.eq(load_left - 1), load_first.eq(0)]
                with m.If(load_last):
                    fsm.goto("LOAD_REPLY")
                with m.Else():
                    fsm.goto("LOAD_BYTE")

        with fsm.state("LOAD_REPLY"):
            # The loader takes a cycle to say it is done after its last byte.
            fill(Cat(Const(protocol.CMD_LOAD, 8), self.loaded), 2)
            fsm.goto("SEND_LOAD_REPLY")

        send("SEND_LOAD_REPLY", "IDLE")

        with receive("STEPS_LOW") as byte:
            m.d.sync += low.eq(byte)
            fsm.goto("STEPS_HIGH")

        with receive("STEPS_HIGH") as byte:
            m.d.sync += steps.eq(Cat(low, byte))
            fsm.goto("CLEAR")

        with fsm.state("CLEAR"):
            m.d.comb += [count_wr.addr.eq(index), count_wr.data.eq(0), count_wr.en.eq(1),
                         index_step.eq(1)]
            with m.If(index_last):
                fsm.goto("START")

        with fsm.state("START"):
            m.d.comb += index_clear.eq(1)  # for the argmax
            m.d.sync += self.start.eq(1)
            with m.If(steps_zero):
                fsm.goto("WAIT")
            if encoder is not None:
                with m.Elif(encoding):
                    fsm.goto("FEATURE")
            with m.Else():
                fsm.goto("EVENT_LOW")

        if encoder is not None:
            with receive("FEATURE") as byte:
                m.d.comb += [features.features.valid.eq(1), features.features.payload.eq(byte)]
                m.d.sync += features_left.eq(features_left - 1)
                with m.If(features_left == 1):
                    fsm.goto("WAIT")

        with receive("EVENT_LOW") as byte:
            m.d.sync += [low.eq(byte), low_at_least.eq(byte >= (inputs & 0xFF))]
            fsm.goto("EVENT_HIGH")

        with receive("EVENT_HIGH") as byte:
            # Bit 15: end of timestep; bits 0..14: the spiking input. Out-of-range inputs
            # are dropped (the core's memories have no entry for them) and reported.
            eot = byte[7]
            m.d.sync += [event.addr.eq(Cat(low, byte[:7])), event.eot.eq(eot)]
            with m.If(~eot & (high_above | high_equal & low_at_least)):
                m.d.sync += bad_input.eq(1)
                fsm.goto("EVENT_LOW")
            with m.Else():
                fsm.goto("PUSH")

        with fsm.state("PUSH"):
            m.d.comb += event_valid.eq(1)
            with m.If(self.events.ready):
                with m.If(event.eot):
                    m.d.sync += steps.eq(steps - 1)
                with m.If(event.eot & last_step):
                    fsm.goto("WAIT")
                with m.Else():
                    fsm.goto("EVENT_LOW")

        with fsm.state("WAIT"):
            with m.If(self.done & ~pending):
                m.d.sync += [best.eq(0), pred.eq(0)]
                fsm.goto("ARGMAX")

        with fsm.state("ARGMAX"):
            # The address needs no condition: the data is taken only when `read` follows.
            m.d.comb += count_rd.addr.eq(index)
            with m.If(~index_end & ~read & ~compare):
                m.d.comb += index_step.eq(1)
                m.d.sync += [read.eq(1), read_index.eq(index)]
            with m.Elif(index_end & ~Cat(read, compare, decide, greater).any()):
                fsm.goto("RESULT")

        with fsm.state("RESULT"):
            fill(Cat(Const(protocol.RESP_RESULT, 8), status), 2)
            m.d.comb += index_clear.eq(1)
            m.d.sync += self.pred.eq(pred)
            fsm.goto("SEND_HEAD")

        send("SEND_HEAD", "READ_COUNT")

        with fsm.state("READ_COUNT"):
            m.d.comb += count_rd.addr.eq(index)
            fsm.goto("LOAD_COUNT")

        with fsm.state("LOAD_COUNT"):
            fill(count_rd.data, 2)
            m.d.comb += index_step.eq(1)
            fsm.goto("SEND_COUNT")

        send("SEND_COUNT", "NEXT_COUNT")

        with fsm.state("NEXT_COUNT"):
            with m.If(index_end):
                fsm.goto("TAIL")
            with m.Else():
                fsm.goto("READ_COUNT")

        with fsm.state("TAIL"):
            fill(Cat(pred, Const(0, 16 - len(pred)), self.cycles), 6)
            fsm.goto("SEND_TAIL")

        send("SEND_TAIL", "IDLE")

        with fsm.state("ABANDON"):
            # Restart the core with no timesteps: it drops the sample and is done at once.
            m.d.sync += [self.start.eq(1), self.timesteps.eq(0)]
            fsm.goto("IDLE")

        with m.If(index_clear):
            m.d.sync += [index.eq(0), index_last.eq(outputs == 1), index_end.eq(0)]
        with m.Elif(index_step):
            m.d.sync += [index.eq(index + 1), index_end.eq(index_last),
                         index_last.eq(index == outputs - 2 if outputs > 1 else 0)]
        with m.If(sending & self.tx.ready):
            m.d.sync += [word.eq(word >> 8), left.eq(left - 1), left_one.eq(left == 2)]
            with m.If(left_one):
                m.d.sync += sending.eq(0)
        with m.If(Cat(bit for bit, _, _ in fills).any()):
            m.d.sync += [sending.eq(1),
                         word.eq(one_hot_select((bit, value) for bit, value, _ in fills)),
                         left.eq(one_hot_select((bit, size) for bit, _, size in fills)),
                         left_one.eq(one_hot_select((bit, size == 1) for bit, _, size in fills))]
        return m
