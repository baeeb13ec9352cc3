"""The neuron engine of one layer: event-driven accumulation, then a LIF sweep, per timestep."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..network.format import Layer
from .layout import LayerLayout, bits_for
from .lif import LIFUnit, state_shape, zero_state
from .synapses import SynapseStore, WriteSignature

__all__ = ["EventLayout", "ProbeSignature", "LayerEngine"]


class EventLayout(data.StructLayout):
    """A spike event: the spiking neuron's index, or (``eot`` = 1) the end of a timestep."""

    def __init__(self, neurons: int):
        super().__init__({"addr": max(1, bits_for(neurons)), "eot": 1})


class ProbeSignature(wiring.Signature):
    """Observation port: one neuron's update per cycle while ``valid`` (no back-pressure)."""

    def __init__(self, neurons: int, v_bits: int):
        super().__init__({
            "valid": Out(1),
            "neuron": Out(max(1, bits_for(neurons))),
            "spike": Out(1),
            "v": Out(signed(v_bits)),
        })


class LayerEngine(wiring.Component):
    """Computes one layer, one timestep after another, from a stream of presynaptic events.

    Per timestep it adds, for each incoming spike, the codebook weight of every synapse of the
    spiking neuron to the accumulator of its target (P synapses a cycle, one per lane), until the
    end-of-timestep event; then it sweeps the neurons one per cycle through the LIF unit, emitting
    the spikes and an end-of-timestep event on ``o``. Engines of successive layers run
    concurrently on successive timesteps. Resetting the engine clears every membrane (the reset
    state sweeps zeros through the memories), so reset starts a new sample.

    Parameters
    ----------
    layer : Layer
        The layer to compute.
    lanes : int
        Synapses processed per cycle (P).
    queue_depth : int
        Depth of the output event queue (at least 4).
    loaded : bool
        The synapse memory is a RAM written through ``write`` before the first sample, not a
        ROM (:class:`~snnhw.hw.synapses.SynapseStore`).
    spram : bool
        A loaded synapse memory is built from iCE40 SPRAM primitives.

    Members
    -------
    i : In(stream.Signature(EventLayout(fan_in)))
        Presynaptic spike events of the current timestep, each timestep closed by ``eot``.
    o : Out(stream.Signature(EventLayout(size)))
        This layer's spike events, each timestep closed by ``eot``.
    probe : Out(ProbeSignature(size, v_bits))
        Every neuron's new membrane potential and spike, as the sweep computes them.
    write : In(WriteSignature)
        Only when ``loaded``: writes synapse words. Never while a sample runs.
    """

    def __init__(self, layer: Layer, lanes: int = 1, queue_depth: int = 16, *,
                 loaded: bool = False, spram: bool = False):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"Lane count must be a positive integer, not {lanes!r}")
        if not isinstance(queue_depth, int) or queue_depth < 4:
            raise ValueError(f"Queue depth must be an integer of at least 4, not {queue_depth!r}")
        self.layer = layer
        self.layout = LayerLayout.build(layer, lanes)
        self.queue_depth = queue_depth
        self.synapses = SynapseStore(self.layout.packed_words(), self.layout.word_bits,
                                     loaded=loaded, spram=spram)
        members = {
            "i": In(stream.Signature(EventLayout(layer.fan_in))),
            "o": Out(stream.Signature(EventLayout(layer.size))),
            "probe": Out(ProbeSignature(layer.size, layer.neuron.v_bits)),
        }
        if loaded:
            members["write"] = In(WriteSignature(self.synapses.depth, self.synapses.width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        layer, lay = self.layer, self.layout
        lanes, size = lay.lanes, lay.size
        v_shape, acc_shape = state_shape(layer.neuron), signed(lay.acc_bits)
        depth = max(2, lay.bank_depth)  # memories of depth 1 would have 0-bit addresses

        # -- memories -------------------------------------------------------------------------
        m.submodules.synapses = synapses = self.synapses
        if synapses.loaded:
            wiring.connect(m, wiring.flipped(self.write), synapses.write)
        m.submodules.codebook = codebook = Memory(
            shape=signed(layer.weight_bits), depth=max(2, len(layer.codebook)),
            init=list(layer.codebook))
        cb_rd = [codebook.read_port() for _ in range(lanes)]
        acc_wr, acc_rd, v_wr, v_rd = [], [], [], []
        for p in range(lanes):
            acc = Memory(shape=acc_shape, depth=depth, init=[])
            v = Memory(shape=v_shape, depth=depth, init=[])
            m.submodules[f"acc{p}"], m.submodules[f"v{p}"] = acc, v
            acc_wr.append(acc.write_port())
            # Transparent: a synapse that reads an accumulator in the cycle the previous synapse
            # writes it (two events targeting one neuron back to back) sees the new sum.
            acc_rd.append(acc.read_port(transparent_for=[acc_wr[p]]))
            v_wr.append(v.write_port())
            v_rd.append(v.read_port())

        m.submodules.queue = queue = SyncFIFOBuffered(
            width=len(self.o.payload.as_value()), depth=self.queue_depth)
        m.d.comb += [
            self.o.payload.eq(queue.r_data),
            self.o.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.o.ready),
        ]
        push = Signal(EventLayout(size))
        m.d.comb += queue.w_data.eq(push)

        m.submodules.lif = lif = LIFUnit(layer.neuron, lay.acc_bits)

        # -- fetch: event -> column -> one synapse word per cycle ------------------------------
        # The column of an accepted event is known one cycle later (pointer memory read, or the
        # implicit layout's constant stride); the next event is accepted while the last word of
        # the current column issues, so columns stream back to back.
        col_pending = Signal()
        col_start = Signal(lay.start_bits)
        col_count = Signal(lay.count_bits)
        word = Signal(lay.start_bits)
        words_left = Signal(lay.count_bits)
        offset = Signal(range(max(2, lay.bank_depth + 1)))  # word index within the column
        if lay.addressed:
            m.submodules.pointers = pointers = Memory(
                shape=lay.start_bits + lay.count_bits, depth=max(2, lay.fan_in),
                init=lay.packed_pointers())
            ptr_rd = pointers.read_port()
            m.d.comb += [
                ptr_rd.addr.eq(self.i.payload.addr),
                col_start.eq(ptr_rd.data[:lay.start_bits]),
                col_count.eq(ptr_rd.data[lay.start_bits:]),
            ]
        else:
            implicit_start = Signal(lay.start_bits)
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += implicit_start.eq(self.i.payload.addr * lay.bank_depth)
            m.d.comb += [col_start.eq(implicit_start), col_count.eq(lay.bank_depth)]

        issue = Signal()  # a synapse word is read this cycle
        issue_addr = Signal(lay.start_bits)
        issue_offset = Signal.like(offset)
        left_after = Signal(lay.count_bits)  # words of the current column still to issue after
        with m.If(col_pending):
            m.d.comb += [
                issue.eq(col_count != 0),
                issue_addr.eq(col_start),
                issue_offset.eq(0),
                left_after.eq(Mux(col_count != 0, col_count - 1, 0)),
            ]
        with m.Else():
            m.d.comb += [
                issue.eq(words_left != 0),
                issue_addr.eq(word),
                issue_offset.eq(offset),
                left_after.eq(Mux(words_left != 0, words_left - 1, 0)),
            ]
        m.d.comb += synapses.addr.eq(issue_addr)

        # -- accumulate pipeline: S1 (slot decode, codebook + accumulator reads), S2 (add) ----
        s1_valid = Signal()
        s1_offset = Signal.like(offset)
        s2_valid = Signal(lanes)
        s2_addr = [Signal(range(depth), name=f"s2_addr{p}") for p in range(lanes)]
        lane_depth = [len(range(p, size, lanes)) for p in range(lanes)]
        slot_valid = Signal(lanes)
        slot_addr = [Signal(range(depth), name=f"slot_addr{p}") for p in range(lanes)]
        slot_index = [Signal(max(1, lay.index_bits), name=f"slot_index{p}") for p in range(lanes)]
        for p in range(lanes):
            slot = synapses.data[p * lay.slot_bits:(p + 1) * lay.slot_bits]
            if lay.addressed:
                m.d.comb += slot_valid[p].eq(s1_valid & slot[0])
                if lay.index_bits:
                    m.d.comb += slot_index[p].eq(slot[1:1 + lay.index_bits])
                if lay.addr_bits:
                    m.d.comb += slot_addr[p].eq(slot[1 + lay.index_bits:])
            else:
                m.d.comb += [
                    slot_valid[p].eq(s1_valid & (s1_offset < lane_depth[p])),
                    slot_addr[p].eq(s1_offset),
                ]
                if lay.index_bits:
                    m.d.comb += slot_index[p].eq(slot[:lay.index_bits])
            m.d.comb += cb_rd[p].addr.eq(slot_index[p])
        m.d.sync += [s2_valid.eq(slot_valid), s1_offset.eq(issue_offset)]
        for p in range(lanes):
            m.d.sync += s2_addr[p].eq(slot_addr[p])
        accumulating = Signal()
        with m.If(accumulating):
            for p in range(lanes):
                m.d.comb += [
                    acc_rd[p].addr.eq(slot_addr[p]),
                    acc_wr[p].addr.eq(s2_addr[p]),
                    acc_wr[p].data.eq(acc_rd[p].data + cb_rd[p].data),
                    acc_wr[p].en.eq(s2_valid[p]),
                ]

        # -- sweep pipeline: T0 (read V and accumulator of neuron j), T1 (LIF, write, emit) ----
        sweep_lane = Signal(range(max(2, lanes)))
        sweep_addr = Signal(range(depth))
        sweep_neuron = Signal(range(size + 1))
        t1_valid = Signal()
        t1_lane = Signal.like(sweep_lane)
        t1_addr = Signal.like(sweep_addr)
        t1_neuron = Signal.like(sweep_neuron)
        # The output queue must accept T1's event one cycle after T0 issues; issue only while
        # two more entries fit (the buffered queue's write side may lag its level by one).
        room = Signal()
        m.d.comb += room.eq(queue.level + t1_valid + 2 <= self.queue_depth)

        v_now = Signal(v_shape)
        acc_now = Signal(acc_shape)
        for p in range(lanes):
            with m.If(t1_lane == p):
                m.d.comb += [v_now.eq(v_rd[p].data), acc_now.eq(acc_rd[p].data)]
        m.d.comb += [lif.state.eq(v_now), lif.current.eq(acc_now)]
        with m.If(t1_valid):
            for p in range(lanes):
                with m.If(t1_lane == p):
                    m.d.comb += [
                        v_wr[p].addr.eq(t1_addr), v_wr[p].data.eq(lif.state_next),
                        v_wr[p].en.eq(1),
                        acc_wr[p].addr.eq(t1_addr), acc_wr[p].data.eq(0), acc_wr[p].en.eq(1),
                    ]
            m.d.comb += [
                push.addr.eq(t1_neuron), push.eot.eq(0), queue.w_en.eq(lif.spike),
                self.probe.valid.eq(1),
            ]
        m.d.comb += [
            self.probe.neuron.eq(t1_neuron),
            self.probe.spike.eq(lif.spike),
            self.probe.v.eq(lif.v_next),
        ]

        # -- control ----------------------------------------------------------------------------
        clear_addr = Signal(range(depth + 1))
        zero = zero_state(layer.neuron)
        m.d.sync += t1_valid.eq(0)
        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                # Zero every membrane and accumulator: a new sample starts from V = 0.
                for p in range(lanes):
                    m.d.comb += [
                        v_wr[p].addr.eq(clear_addr), v_wr[p].data.eq(zero), v_wr[p].en.eq(1),
                        acc_wr[p].addr.eq(clear_addr), acc_wr[p].data.eq(0), acc_wr[p].en.eq(1),
                    ]
                m.d.sync += clear_addr.eq(clear_addr + 1)
                with m.If(clear_addr == depth - 1):
                    m.next = "ACCUMULATE"

            with m.State("ACCUMULATE"):
                m.d.comb += [accumulating.eq(1), self.i.ready.eq(left_after == 0)]
                m.d.sync += [
                    s1_valid.eq(issue),
                    word.eq(issue_addr + 1),
                    words_left.eq(left_after),
                    offset.eq(issue_offset + 1),
                    col_pending.eq(0),
                ]
                with m.If(self.i.valid & self.i.ready):
                    with m.If(self.i.payload.eot):
                        m.next = "DRAIN"
                    with m.Else():
                        m.d.sync += col_pending.eq(1)

            with m.State("DRAIN"):
                # The last words are still in S1/S2; the sweep reads what they write.
                m.d.comb += accumulating.eq(1)
                m.d.sync += s1_valid.eq(0)
                with m.If(~s1_valid & (s2_valid == 0)):
                    m.d.sync += [sweep_lane.eq(0), sweep_addr.eq(0), sweep_neuron.eq(0)]
                    m.next = "SWEEP"

            with m.State("SWEEP"):
                with m.If(room):
                    with m.If(sweep_neuron != size):
                        for p in range(lanes):
                            with m.If(sweep_lane == p):
                                m.d.comb += [v_rd[p].addr.eq(sweep_addr),
                                             acc_rd[p].addr.eq(sweep_addr)]
                        m.d.sync += [
                            t1_valid.eq(1), t1_lane.eq(sweep_lane), t1_addr.eq(sweep_addr),
                            t1_neuron.eq(sweep_neuron), sweep_neuron.eq(sweep_neuron + 1),
                        ]
                        with m.If(sweep_lane == lanes - 1):
                            m.d.sync += [sweep_lane.eq(0), sweep_addr.eq(sweep_addr + 1)]
                        with m.Else():
                            m.d.sync += sweep_lane.eq(sweep_lane + 1)
                    with m.Elif(~t1_valid):
                        # T1 of the last neuron has pushed: close the timestep.
                        m.d.comb += [push.eot.eq(1), queue.w_en.eq(1)]
                        m.next = "ACCUMULATE"
        return m

