"""The neuron engine of one layer: event-driven accumulation of timestep t+1 overlapped with the
LIF sweep of timestep t."""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..errors import SnnhwError
from ..plan import LayerPlan, Layout, Placement
from ..plan.widths import bits_for
from .lif import LIFUnit, state_shape, zero_state
from .synapses import SynapseStore, WriteSignature

__all__ = ["EventLayout", "ProbeSignature", "LayerEngine", "NEURON_UNITS", "NO_COLLISION",
           "no_collision_memory"]

#: Attribute of a memory whose read port never returns a word in the cycle the write port
#: writes that word to be used: a read that meets a write to its address may read anything. The
#: board build tells Yosys so (``snnhw.boards.build``), which then maps the memory to block RAM
#: without emulating the read-before-write order (a delayed write, an address compare and a
#: multiplexer after the RAM). Simulation keeps the old word, which no one uses; the engine's
#: formal proof (:mod:`snnhw.formal.engine`) gives such a read a free value instead.
NO_COLLISION = "snnhw_no_collision"

#: The hardware update unit of each neuron model (:data:`snnhw.network.format.NEURON_MODELS`).
NEURON_UNITS = {"lif": LIFUnit}

#: Events a layer engine holds between accepting them and starting their columns: the pointer
#: read, its register and the column queue (three would leave a bubble after each one-word
#: column).
FETCH_DEPTH = 4


def no_collision_memory(m: Module, name: str, shape, depth: int,
                        collision_data: Value | None = None):
    """Add an uninitialised :data:`NO_COLLISION` memory to ``m``; return its write port and read
    port.

    With ``collision_data`` (formal proofs only) the read port returned gives ``collision_data``
    in the cycle after its read met a write to the same address, the value a board build's
    mapping leaves undefined; a proof of the design with free ``collision_data`` shows that no
    such read is used.
    """
    m.submodules[name] = memory = Memory(shape=shape, depth=depth, init=[],
                                         attrs={NO_COLLISION: 1})
    wr, rd = memory.write_port(), memory.read_port()
    if collision_data is None:
        return wr, rd
    collided = Signal(name=f"{name}_collided", reset_less=True)  # also across a reset
    m.d.sync += collided.eq(rd.en & wr.en & (rd.addr == wr.addr))
    data = Signal(memory.shape, name=f"{name}_read")
    m.d.comb += Value.cast(data).eq(Mux(collided, collision_data, Value.cast(rd.data)))
    return wr, SimpleNamespace(addr=rd.addr, en=rd.en, data=data)


class EventLayout(data.StructLayout):
    """A spike event: the spiking neuron's index, or (``eot`` = 1) the end of a timestep.

    ``addr_bits`` comes from the plan (:attr:`~snnhw.plan.LayerPlan.in_addr_bits` and friends).
    """

    def __init__(self, addr_bits: int):
        super().__init__({"addr": addr_bits, "eot": 1})


class ProbeSignature(wiring.Signature):
    """Observation port: one neuron's update per cycle while ``valid`` (no back-pressure)."""

    def __init__(self, neuron_bits: int, v_bits: int):
        super().__init__({
            "valid": Out(1),
            "neuron": Out(neuron_bits),
            "spike": Out(1),
            "v": Out(signed(v_bits)),
        })


class LayerEngine(wiring.Component):
    """Computes one layer, one timestep after another, from a stream of presynaptic events.

    Per timestep it adds, for each incoming spike, the codebook weight of every synapse of the
    spiking neuron to the accumulator of its target (P synapses a cycle, one per lane), until the
    end-of-timestep event; then it sweeps the neurons one per cycle through the LIF unit, emitting
    the spikes and an end-of-timestep event on ``o``. The accumulators are double-buffered (two
    banks per lane, used by timestep parity), so the events of timestep t+1 accumulate while
    the neurons of timestep t are swept. Engines of successive layers run concurrently on
    successive timesteps. Resetting the engine clears both accumulator banks (the reset state
    sweeps zeros through them) and makes the first sweep read every membrane as zero, so reset
    starts a new sample.

    Parameters
    ----------
    plan : LayerPlan
        The layer, its synapse layout, widths, queue depth and synapse placement: with
        :attr:`~snnhw.plan.Placement.LARGE` the synapse memory is a RAM written through
        ``write`` before the first sample, not a ROM (:class:`~snnhw.hw.synapses.SynapseStore`).
    spram : bool
        A large-RAM synapse memory is built from iCE40 SPRAM primitives.
    slice_bits : int or None
        A block-RAM synapse ROM is split by width into memories of this many bits
        (:meth:`~snnhw.plan.CorePlan.synapse_slice_bits`); None: one memory.
    undefined_collisions : bool
        For formal proofs only: a read of a :data:`NO_COLLISION` memory that meets a write to
        its address in the same cycle returns bits of ``collision_data`` (free in a proof), as
        the board build's mapping allows; a proof that passes shows no such read is used.

    Members
    -------
    i : In(stream.Signature(EventLayout(plan.in_addr_bits)))
        Presynaptic spike events of the current timestep, each timestep closed by ``eot``.
    o : Out(stream.Signature(EventLayout(plan.out_addr_bits)))
        This layer's spike events, each timestep closed by ``eot``.
    probe : Out(ProbeSignature(plan.out_addr_bits, v_bits))
        Every neuron's new membrane potential and spike, as the sweep computes them.
    write : In(WriteSignature)
        Only with a large-RAM synapse memory: writes synapse words. Never while a sample runs.
    collision_data : In
        Only with ``undefined_collisions``: what colliding reads return.
    """

    def __init__(self, plan: LayerPlan, *, spram: bool = False, slice_bits: int | None = None,
                 undefined_collisions: bool = False):
        if not isinstance(plan, LayerPlan):
            raise TypeError(f"Layer plan must be a LayerPlan, not {plan!r}")
        model = plan.layer.neuron.model
        if model not in NEURON_UNITS:
            raise SnnhwError(f"layer {plan.name}: neuron model {model!r} has no hardware unit "
                             f"(the generator has {', '.join(NEURON_UNITS)})")
        self.plan = plan
        self.synapses = SynapseStore(plan.synapses.packed_words(), plan.synapses.word_bits,
                                     placement=plan.placement, spram=spram,
                                     slice_bits=slice_bits)
        members = {
            "i": In(stream.Signature(EventLayout(plan.in_addr_bits))),
            "o": Out(stream.Signature(EventLayout(plan.out_addr_bits))),
            "probe": Out(ProbeSignature(plan.out_addr_bits, plan.layer.neuron.v_bits)),
        }
        if plan.placement is Placement.LARGE:
            members["write"] = In(WriteSignature(self.synapses.depth, self.synapses.width))
        self.undefined_collisions = undefined_collisions
        if undefined_collisions:
            # every accumulator bank's word and the membrane word, in one cycle
            members["collision_data"] = In(2 * plan.lanes * plan.acc_bits
                                           + Shape.cast(state_shape(plan.layer.neuron)).width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        layer, lay = plan.layer, plan.synapses
        lanes, size = plan.lanes, layer.size
        v_shape, acc_shape = state_shape(layer.neuron), signed(plan.acc_bits)
        depth = max(2, lay.bank_depth)  # memories of depth 1 would have 0-bit addresses

        def collision_bits(first: int) -> Value | None:
            """Formal proofs only: the free bits a colliding read returns (the low ones used)."""
            return self.collision_data[first:] if self.undefined_collisions else None

        # -- memories -------------------------------------------------------------------------
        m.submodules.synapses = synapses = self.synapses
        if plan.placement is Placement.LARGE:
            wiring.connect(m, wiring.flipped(self.write), synapses.write)
        m.submodules.codebook = codebook = Memory(
            shape=signed(layer.weight_bits), depth=max(2, len(layer.codebook)),
            init=list(layer.codebook))
        cb_rd = [codebook.read_port() for _ in range(lanes)]
        # Two accumulator banks per lane (acc_wr[bank][lane]): at any time one belongs to the
        # accumulation (timestep t+1) and the other to the sweep (timestep t), so each bank needs
        # only one read and one write port, which block RAMs have.
        acc_wr, acc_rd = [[], []], [[], []]
        for p in range(lanes):
            for b in range(2):
                # No read uses a word its bank writes in the same cycle: the accumulation takes
                # the sum of the word one or two ahead instead (S3 below), and the sweep reads a
                # neuron (T0) before clearing it (F) and only after the last clear of the bank
                # by the previous sweep (handoff). So the bank is NO_COLLISION.
                wr, rd = no_collision_memory(m, f"acc{p}_{b}", acc_shape, depth,
                                             collision_bits((2 * p + b) * plan.acc_bits))
                acc_wr[b].append(wr)
                acc_rd[b].append(rd)
        # One membrane memory, by neuron: the sweep reads and writes one neuron a cycle, so it
        # needs no lane select. It is never cleared: the first sweep of a sample reads V = 0
        # instead (``fresh``), and writes every neuron. NO_COLLISION: the sweep reads a neuron's V
        # (T0) before it writes it (F).
        v_wr, v_rd = no_collision_memory(m, "v", v_shape, max(2, size),
                                         collision_bits(2 * lanes * plan.acc_bits))
        fresh = Signal(init=1)
        zero = zero_state(layer.neuron)
        # The bank the accumulation owns; the sweep owns the other one. They swap (a "handoff",
        # in DRAIN) only once the timestep's last word has left S1 and no sweep is in flight.
        acc_bank = Signal()

        m.submodules.queue = queue = SyncFIFOBuffered(
            width=len(self.o.payload.as_value()), depth=plan.queue_depth)
        m.d.comb += [
            self.o.payload.eq(queue.r_data),
            self.o.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.o.ready),
        ]
        # The queue is written through a register: the sweep's control and the LIF unit's spike
        # decide a write, and the queue's pointer and level logic sees it a cycle later.
        push = Signal(EventLayout(plan.out_addr_bits))
        push_en = Signal()
        m.d.sync += [queue.w_data.eq(push), queue.w_en.eq(push_en)]

        m.submodules.lif = lif = NEURON_UNITS[layer.neuron.model](layer.neuron, plan.acc_bits)

        # -- fetch: event -> pointer -> column queue -> one synapse word per cycle -----------
        # An accepted event's pointer is read (pointer memory, or the implicit layout's constant
        # stride) into a register, F; a cycle later its column enters a short queue of
        # registers, with the facts the issue needs about its count (computed from F, not from
        # the memory's output); the columns are issued from the queue's head. The synapse
        # address is a register (``word``: the current column's next word, or, between
        # columns, the head's start), and ``i.ready`` a register (room for one more event), so
        # no memory output and no issue decision lies on either. The queue takes events also
        # while the layer drains or clears, so the next timestep's first column is at the head
        # when its accumulation starts; with room for FETCH_DEPTH events in flight, one-word
        # columns stream back to back.
        taken = Signal()  # an event accepted this cycle
        fetched, fetched_eot = Signal(), Signal()  # its pointer is read: in F next cycle
        in_fetch = Signal(range(FETCH_DEPTH + 1))  # events accepted and not yet issued
        fetch_room = Signal(init=1)  # in_fetch < FETCH_DEPTH, kept as a register: i.ready
        m.d.comb += [taken.eq(self.i.valid & fetch_room), self.i.ready.eq(fetch_room)]
        m.d.sync += [fetched.eq(taken), fetched_eot.eq(self.i.payload.eot)]
        ptr_start = Signal(lay.start_bits)
        ptr_count = Signal(lay.count_bits)
        ptr_event = Signal(max(1, lay.event_bits))
        if lay.has_pointers:
            m.submodules.pointers = pointers = Memory(
                shape=lay.pointer_bits, depth=max(2, layer.fan_in),
                init=lay.packed_pointers())
            ptr_rd = pointers.read_port()
            m.d.comb += [
                ptr_rd.addr.eq(self.i.payload.addr),
                ptr_start.eq(ptr_rd.data[:lay.start_bits]),
                ptr_count.eq(ptr_rd.data[lay.start_bits:lay.start_bits + lay.count_bits]),
            ]
            if lay.event_bits:
                m.d.comb += ptr_event.eq(ptr_rd.data[lay.start_bits + lay.count_bits:])
        else:
            m.d.sync += ptr_start.eq(self.i.payload.addr * lay.bank_depth)
            m.d.comb += ptr_count.eq(lay.bank_depth)
        # F: the pointer, registered.
        f_valid, f_eot = Signal(), Signal()
        f_start, f_count, f_event = Signal.like(ptr_start), Signal.like(ptr_count), \
            Signal.like(ptr_event)
        m.d.sync += [f_valid.eq(fetched), f_eot.eq(fetched_eot), f_start.eq(ptr_start),
                     f_count.eq(ptr_count), f_event.eq(ptr_event)]
        # The column queue: entry 0 is the head; valid entries are a prefix. Each entry has its
        # column's start and, for its count c, the words after the first (``left``, c - 1 or 0)
        # and the flags c != 0 (``some``), c <= 1 (``single``) and c == 2 (``pair``).
        f_entry = {"valid": Const(1), "eot": f_eot, "start": f_start,
                   "left": Mux(f_count != 0, f_count - 1, 0), "some": f_count != 0,
                   "single": ~f_count[1:].any(), "event": f_event,
                   # (compares a 1-bit count cannot pass: Verilator's lint refuses them)
                   "pair": f_count == 2 if len(f_count) > 1 else Const(0)}
        q = [{"valid": Signal(name=f"q{k}_valid"), "eot": Signal(name=f"q{k}_eot"),
              "start": Signal.like(ptr_start, name=f"q{k}_start"),
              "left": Signal.like(ptr_count, name=f"q{k}_left"),
              "some": Signal(name=f"q{k}_some"), "single": Signal(name=f"q{k}_single"),
              "pair": Signal(name=f"q{k}_pair"),
              "event": Signal.like(ptr_event, name=f"q{k}_event")}
             for k in range(FETCH_DEPTH)]
        head = q[0]
        head_start_next = Signal.like(ptr_start)  # the head's start in the next cycle
        # The head leaves: its column starts, or its eot closes the timestep. A register (from
        # the next cycle's accumulating, none_left and head valid): the queue's enables and the
        # issue start at a flip-flop.
        pop = Signal()
        for k in range(FETCH_DEPTH):
            later_valid = q[k + 1]["valid"] if k + 1 < FETCH_DEPTH else Const(0)
            earlier_valid = q[k - 1]["valid"] if k else Const(1)
            # The column in F enters the first entry free after this cycle's pop.
            arrives = f_valid & Mux(pop, q[k]["valid"] & ~later_valid,
                                    ~q[k]["valid"] & earlier_valid)
            after_pop = q[k + 1] if k + 1 < FETCH_DEPTH else {"valid": Const(0)}
            with m.If(arrives):
                m.d.sync += [q[k][key].eq(f_entry[key]) for key in q[k]]
            with m.Elif(pop):
                m.d.sync += [q[k][key].eq(after_pop[key]) for key in after_pop]
            if k == 0:
                m.d.comb += head_start_next.eq(
                    Mux(arrives, f_start, Mux(pop, q[1]["start"], head["start"])))
        in_fetch_next = Signal.like(in_fetch)
        m.d.comb += in_fetch_next.eq(in_fetch + taken - pop)
        m.d.sync += [in_fetch.eq(in_fetch_next), fetch_room.eq(in_fetch_next < FETCH_DEPTH)]

        # The current column: ``word`` is the address read when a word issues (the head's start
        # when no word of the current column is left), ``words_left`` the words still to issue.
        # Its compares are kept as registers: ``none_left`` (0 left: the head may start) and
        # ``one_left``.
        col_pending = Signal()  # the head's column starts this cycle
        word = Signal(lay.start_bits)
        words_left = Signal(lay.count_bits)
        none_left, one_left = Signal(init=1), Signal()
        none_left_next = Signal()
        offset = Signal(range(max(2, lay.bank_depth + 1)))  # word index within the column
        issue = Signal()  # a synapse word is read this cycle
        issue_offset = Signal.like(offset)
        accumulating = Signal()
        accumulating_next = Signal()
        m.d.comb += [
            col_pending.eq(pop & ~head["eot"]),
            synapses.addr.eq(word),
            # After this cycle: none left unless a column of two or more words starts, or one
            # goes on after its next-to-last word.
            none_left_next.eq(Mux(none_left, ~(pop & ~head["eot"] & ~head["single"]), one_left)),
        ]
        with m.If(col_pending):
            m.d.comb += [issue.eq(head["some"]), issue_offset.eq(0)]
        with m.Else():
            m.d.comb += [issue.eq(~none_left), issue_offset.eq(offset)]
        # Between columns ``word`` follows the head (which fills also while not accumulating).
        m.d.sync += [none_left.eq(none_left_next),
                     word.eq(Mux(none_left_next, head_start_next, word + 1)),
                     accumulating.eq(accumulating_next),
                     pop.eq(accumulating_next & none_left_next &
                            (f_valid | Mux(pop, q[1]["valid"], head["valid"])))]
        # Kernel layout: the event's fields (pointer bits after start and count) travel with
        # each word of its column to the slot decode in S1.
        # At least one bit: a zero-width signal is written as a [-1:0] vector, which lint refuses.
        event = Signal(max(1, lay.event_bits))
        issue_event = Signal(max(1, lay.event_bits))
        if lay.event_bits:
            m.d.comb += issue_event.eq(Mux(col_pending, head["event"], event))

        # -- accumulate pipeline: S0 (the synapse word, registered), S1 (slot decode), S2
        # (codebook + accumulator reads), S3 (bank select, registered), S4 (add, write) ----------
        # Each stage ends in registers, so no path crosses more than one memory read and a short
        # step (the synapse memory's output goes to a register before the slot decode; the
        # accumulator's, through the bank select, before the adder). A word read in S2 does not
        # see the sums that the two words ahead of it write (in S3's cycle and its own): it
        # compares its address with theirs (registers all) a stage early, so S3 takes, instead
        # of the stale read, the sum of the word one ahead (as S4 computes it) or else of the
        # word two ahead (words further apart see the memory). The adder's operand is then
        # always a register.
        s0_valid, s1_valid = Signal(), Signal()
        s0_next = Signal()  # s0_valid of the next cycle: a word issues (ACCUMULATE only)
        m.d.sync += s0_valid.eq(s0_next)
        s0_offset, s1_offset = Signal.like(offset), Signal.like(offset)
        # The word is its column's first (offset 0), as a register rather than a compare.
        s0_first, s1_first = Signal(), Signal()
        s0_word = Signal.like(synapses.data)
        s0_event, s1_event = Signal.like(event), Signal.like(event)
        m.d.sync += [s0_word.eq(synapses.data), s1_valid.eq(s0_valid),
                     s0_offset.eq(issue_offset), s1_offset.eq(s0_offset),
                     s0_first.eq(col_pending), s1_first.eq(s0_first),
                     s0_event.eq(issue_event), s1_event.eq(s0_event)]
        lane_depth = [len(range(p, size, lanes)) for p in range(lanes)]
        slot_valid = Signal(lanes)
        slot_addr = [Signal(range(depth), name=f"slot_addr{p}") for p in range(lanes)]
        slot_index = [Signal(max(1, lay.index_bits), name=f"slot_index{p}") for p in range(lanes)]
        for p in range(lanes):
            slot = s0_word[p * lay.slot_bits:(p + 1) * lay.slot_bits]
            if lay.kind is Layout.ADDRESSED:
                m.d.comb += slot_valid[p].eq(s1_valid & slot[0])
                if lay.index_bits:
                    m.d.comb += slot_index[p].eq(slot[1:1 + lay.index_bits])
                if lay.addr_bits:
                    m.d.comb += slot_addr[p].eq(slot[1 + lay.index_bits:])
            elif lay.kind is Layout.KERNEL:
                _decode_kernel(m, slot, s1_event, lay, valid=s1_valid, slot_valid=slot_valid[p],
                               slot_addr=slot_addr[p], slot_index=slot_index[p])
            elif lay.kind is Layout.DELTA:
                _decode_delta(m, slot, lay.gap_bits, first=s1_first, valid=s1_valid,
                              slot_valid=slot_valid[p], slot_addr=slot_addr[p],
                              slot_index=slot_index[p], name=f"run_addr{p}")
            else:
                m.d.comb += [
                    slot_valid[p].eq(s1_valid & (s1_offset < lane_depth[p])),
                    slot_addr[p].eq(s1_offset),
                ]
                if lay.index_bits:
                    m.d.comb += slot_index[p].eq(slot[:lay.index_bits])
        # S3 registers the accumulation's side of the banks (or the sum of the word one or two
        # ahead) and the codebook value; S4 adds them and writes.
        s2_valid, s3_valid, s4_valid = Signal(lanes), Signal(lanes), Signal(lanes)
        s3_forward, s3_follows = Signal(lanes), Signal(lanes)  # take the word two / one ahead's
        s2_addr = [Signal(range(depth), name=f"s2_addr{p}") for p in range(lanes)]
        s3_addr = [Signal(range(depth), name=f"s3_addr{p}") for p in range(lanes)]
        s4_addr = [Signal(range(depth), name=f"s4_addr{p}") for p in range(lanes)]
        s2_index = [Signal.like(slot_index[p], name=f"s2_index{p}") for p in range(lanes)]
        s4_base = [Signal(acc_shape, name=f"s4_base{p}") for p in range(lanes)]
        s4_weight = [Signal(signed(layer.weight_bits), name=f"s4_weight{p}")
                     for p in range(lanes)]
        a_sum = [Signal(acc_shape, name=f"a_sum{p}") for p in range(lanes)]
        last_sum = [Signal(acc_shape, name=f"last_sum{p}") for p in range(lanes)]
        m.d.sync += [s2_valid.eq(slot_valid), s3_valid.eq(s2_valid), s4_valid.eq(s3_valid)]
        # S0 to S3 hold no word, kept as a register (from each stage's next valid) so that
        # DRAIN's handoff condition is short.
        pipe_empty = Signal(init=1)
        m.d.sync += pipe_empty.eq(~s0_next & ~s0_valid & (slot_valid == 0) & (s2_valid == 0))
        for p in range(lanes):
            m.d.sync += [
                s2_addr[p].eq(slot_addr[p]), s2_index[p].eq(slot_index[p]),
                s3_addr[p].eq(s2_addr[p]), s4_addr[p].eq(s3_addr[p]),
                # The word in S2 read the bank before the words now in S3 and S4 wrote it.
                s3_forward[p].eq(s2_valid[p] & s4_valid[p] & (s2_addr[p] == s4_addr[p])),
                s3_follows[p].eq(s2_valid[p] & s3_valid[p] & (s2_addr[p] == s3_addr[p])),
                last_sum[p].eq(a_sum[p]),
                s4_weight[p].eq(cb_rd[p].data),
            ]
            m.d.comb += cb_rd[p].addr.eq(s2_index[p])
            # The accumulation's side of lane p's banks (bank acc_bank), or the forwarded sum.
            acc_read = Mux(acc_bank, acc_rd[1][p].data, acc_rd[0][p].data)
            m.d.sync += s4_base[p].eq(Mux(s3_follows[p], a_sum[p],
                                          Mux(s3_forward[p], last_sum[p], acc_read)))
            m.d.comb += a_sum[p].eq(s4_base[p] + s4_weight[p])

        # -- sweep pipeline: T0 (read V and accumulator of neuron j), T1 (select its lane),
        # the LIF unit's stages, then F (write V, clear the accumulator, emit) ----------------
        sweep_lane = Signal(range(max(2, lanes)))
        sweep_addr = Signal(range(depth))
        sweep_neuron = Signal(range(size + 1))
        # Neuron j in lane j // group % P (:meth:`~snnhw.plan.SynapseLayout.place`): the sweep
        # walks a lane's run of ``group`` neurons, then the next lane's from the run's first
        # address (``sweep_base``), and after the last lane the next runs; group 1 is j % P.
        group = lay.group
        sweep_pos = Signal(range(max(2, group)))  # position in the run
        sweep_base = Signal.like(sweep_addr) if group > 1 else sweep_addr

        def stage(name):
            return {"valid": Signal(name=f"{name}_valid"),
                    "lane": Signal.like(sweep_lane, name=f"{name}_lane"),
                    "addr": Signal.like(sweep_addr, name=f"{name}_addr"),
                    "neuron": Signal.like(sweep_neuron, name=f"{name}_neuron")}

        # The neuron in each stage after T0: T1, T2 (its V and current enter the LIF unit), one
        # more per cycle of LIF latency; the last, F, has the unit's outputs.
        stages = [stage(f"t{k}") for k in range(1, lif.latency + 3)]
        t1, final = stages[0], stages[-1]
        for earlier, later in zip(stages, stages[1:]):
            m.d.sync += [later[key].eq(earlier[key]) for key in later]
        in_flight = Signal(range(len(stages) + 1))  # neurons in T1..F
        in_flight_next = Signal.like(in_flight)
        empty = Signal(init=1)  # in_flight == 0, kept as a register

        # The output queue must accept F's event len(stages) cycles after T0 issues; issue only
        # while the queue's entries, the neurons in flight and three more fit (the write
        # register in front of the queue, and the buffered queue's write side may lag its level
        # by one). The check is registered, so it also leaves room for the one entry that the
        # cycle it lags by may add.
        room = Signal()
        m.d.sync += room.eq(queue.level + in_flight + 4 <= plan.queue_depth)
        issue_sweep = Signal()
        m.d.comb += in_flight_next.eq(in_flight + issue_sweep - final["valid"])
        m.d.sync += [in_flight.eq(in_flight_next), empty.eq(in_flight_next == 0)]

        # T1: the neuron's V and the lane's accumulator (the sweep's bank), registered into the
        # LIF unit; one balanced multiplexer over (lane, bank), not a chain of per-lane selects.
        v_now = Signal(v_shape)
        acc_now = Signal(acc_shape)
        m.d.comb += v_rd.addr.eq(sweep_neuron)
        m.d.sync += v_now.eq(Mux(fresh, zero, v_rd.data))
        with m.Switch(Cat(t1["lane"], acc_bank)):
            for p in range(lanes):
                for b in range(2):
                    with m.Case(p | (b << len(t1["lane"]))):
                        m.d.sync += acc_now.eq(acc_rd[1 - b][p].data)
        # The neuron whose V and current enter the unit (it selects per-neuron parameters).
        m.d.comb += [lif.state.eq(v_now), lif.current.eq(acc_now),
                     lif.index.eq(stages[1]["neuron"])]
        m.d.comb += [v_wr.addr.eq(final["neuron"]), v_wr.data.eq(lif.state_next)]
        with m.If(final["valid"]):
            m.d.comb += [
                v_wr.en.eq(1),
                push.addr.eq(final["neuron"]), push.eot.eq(0), push_en.eq(lif.spike),
                self.probe.valid.eq(1),
            ]
        m.d.comb += [
            self.probe.neuron.eq(final["neuron"]),
            self.probe.spike.eq(lif.spike),
            self.probe.v.eq(lif.v_next),
        ]

        # -- accumulator banks: each lane's two banks, routed by owner --------------------------
        # The accumulation reads in S2 and writes in S4; the sweep reads in T0 and clears the word
        # it has consumed in F (the bank is then all zeros for timestep t+2).
        clearing = Signal(init=1)
        clear_addr = Signal(range(depth + 1))
        for b in range(2):
            for p in range(lanes):
                rd, wr = acc_rd[b][p], acc_wr[b][p]
                with m.If(clearing):
                    m.d.comb += [wr.addr.eq(clear_addr), wr.data.eq(0), wr.en.eq(1)]
                with m.Elif(acc_bank == b):
                    m.d.comb += [
                        rd.addr.eq(s2_addr[p]),
                        wr.addr.eq(s4_addr[p]), wr.data.eq(a_sum[p]), wr.en.eq(s4_valid[p]),
                    ]
                with m.Else():
                    m.d.comb += [
                        rd.addr.eq(sweep_addr),
                        wr.addr.eq(final["addr"]), wr.data.eq(0),
                        wr.en.eq(final["valid"] & (final["lane"] == p)),
                    ]

        # -- sweep control ----------------------------------------------------------------------
        sweeping = Signal()
        swept = Signal()  # sweep_neuron == size, kept as a register
        sweep_free = Signal()  # the sweep can take the other bank this cycle
        m.d.sync += t1["valid"].eq(0)
        with m.If(sweeping & room):
            with m.If(~swept):
                m.d.comb += issue_sweep.eq(1)
                m.d.sync += [
                    t1["valid"].eq(1), t1["lane"].eq(sweep_lane), t1["addr"].eq(sweep_addr),
                    t1["neuron"].eq(sweep_neuron), sweep_neuron.eq(sweep_neuron + 1),
                    swept.eq(sweep_neuron == size - 1),
                ]
                with m.If(sweep_pos == group - 1):
                    m.d.sync += sweep_pos.eq(0)
                    with m.If(sweep_lane == lanes - 1):
                        m.d.sync += [sweep_lane.eq(0), sweep_addr.eq(sweep_addr + 1)]
                        if group > 1:
                            m.d.sync += sweep_base.eq(sweep_addr + 1)
                    with m.Else():
                        m.d.sync += [sweep_lane.eq(sweep_lane + 1), sweep_addr.eq(sweep_base)]
                with m.Else():
                    m.d.sync += [sweep_pos.eq(sweep_pos + 1), sweep_addr.eq(sweep_addr + 1)]
            with m.Elif(empty):
                # F of the last neuron has pushed (and cleared its accumulator): close the
                # timestep. A handoff in this same cycle starts the next sweep at once.
                m.d.comb += [push.eot.eq(1), push_en.eq(1)]
                m.d.sync += [sweeping.eq(0), fresh.eq(0)]
        # Free when idle or closing (the branch above), as one function of four flip-flops: the
        # branches' nesting cost LUT levels into the handoff (the example's P = 4 critical path).
        m.d.comb += sweep_free.eq(~sweeping | (room & swept & empty))

        # -- accumulation control -----------------------------------------------------------------
        # Three states, CLEAR (``clearing``), ACCUMULATE (``accumulating``) and DRAIN (neither),
        # kept in those two flip-flops rather than a binary-encoded FSM: the state's decode would
        # add LUT levels in front of the handoff (the example's critical path at P = 2 and 4).
        m.d.comb += accumulating_next.eq(accumulating)
        with m.If(clearing):
            # Zero both accumulator banks (a new sample starts from V = 0: ``fresh``).
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == depth - 1):
                m.d.sync += clearing.eq(0)
                m.d.comb += accumulating_next.eq(1)

        with m.Elif(accumulating):
            # Timestep t+1 into bank acc_bank, while the sweep of t may still run.
            m.d.comb += s0_next.eq(issue)
            m.d.sync += [event.eq(issue_event), offset.eq(issue_offset + 1)]
            with m.If(col_pending):
                m.d.sync += [words_left.eq(head["left"]), one_left.eq(head["pair"])]
            with m.Elif(~none_left):
                m.d.sync += [words_left.eq(words_left - 1), one_left.eq(words_left == 2)]
            with m.If(pop & head["eot"]):
                m.d.comb += accumulating_next.eq(0)

        with m.Else():
            # The last words are still in S0..S4; the sweep reads what they write. Once S0
            # to S3 are empty and the sweep of the previous timestep has finished, hand
            # this bank to the sweep and take the other (the sweep has just cleared it). A
            # word in S4 still writes this bank in the handoff cycle (the routing follows
            # acc_bank, which flips after it), and the sweep's first read comes a cycle later.
            with m.If(pipe_empty & sweep_free):
                m.d.sync += [
                    acc_bank.eq(~acc_bank), sweeping.eq(1), swept.eq(0),
                    sweep_lane.eq(0), sweep_addr.eq(0), sweep_neuron.eq(0),
                    sweep_pos.eq(0),
                ]
                m.d.comb += accumulating_next.eq(1)
                if group > 1:
                    m.d.sync += sweep_base.eq(0)
        return m


def _decode_delta(m, slot, gap_bits, *, first, valid, slot_valid, slot_addr, slot_index, name):
    """One lane's delta slot (:mod:`snnhw.plan.layout`): from the lane's running address ``a``
    (-1 at a column's ``first`` word), the target ``a + {escape ? index : 0, gap} + !escape``
    in one adder; an escape (gap all ones) adds nothing. Arithmetic is modulo the address
    width: a target is below the bank depth, and the running address never passes it."""
    gap, index = slot[:gap_bits], slot[gap_bits:]
    escape = gap.all()
    running = Signal.like(slot_addr, name=name)
    start = Mux(first, Const((1 << len(running)) - 1, len(running)), running)
    step = Cat(gap, index & escape.replicate(len(index))) if len(index) else gap
    m.d.comb += [slot_addr.eq(start + step + ~escape), slot_valid.eq(valid & ~escape)]
    if len(index):
        m.d.comb += slot_index.eq(index)
    with m.If(valid):
        m.d.sync += running.eq(slot_addr)


def _decode_kernel(m, slot, event, lay, *, valid, slot_valid, slot_addr, slot_index):
    """One lane's kernel slot (:mod:`snnhw.plan.layout`) against the event's fields: valid where
    the slot holds a tap and the event's row and column masks have the tap's ky and kx, at bank
    address ``e + d`` (one adder, modulo the address field)."""
    index_bits, addr_bits, (kh, kw) = lay.index_bits, lay.addr_bits, lay.kernel
    d = slot[1 + index_bits:1 + index_bits + addr_bits]
    ky = slot[1 + index_bits + addr_bits:1 + index_bits + addr_bits + bits_for(kh)]
    kx = slot[1 + index_bits + addr_bits + bits_for(kh):]
    e, ymask, xmask = event[:addr_bits], event[addr_bits:addr_bits + kh], event[addr_bits + kh:]
    m.d.comb += [
        slot_valid.eq(valid & slot[0] & _bit(ymask, ky) & _bit(xmask, kx)),
        slot_addr.eq((e + d)[:addr_bits]),
    ]
    if index_bits:
        m.d.comb += slot_index.eq(slot[1:1 + index_bits])


def _bit(mask, select):
    """Bit ``select`` of ``mask`` (bit 0 for a 0-bit select)."""
    return mask.bit_select(select, 1) if len(select) else mask[0]
