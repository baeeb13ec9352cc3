"""A stimulus/capture harness around a core, so a simulator runs whole batches without Python.

The testbench writes a batch's input events into the stimulus memory, pulses ``go`` and waits for
``done``; meanwhile the harness plays every sample into the core (random idle cycles on the input
stream, random back-pressure on the output stream, from seeded LFSRs) and records everything the
core emits into capture memories, which the testbench then reads back a wide word at a time.
"""

import functools
import operator
from collections.abc import Mapping

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["PROBABILITY_BITS", "SEED_BITS", "COUNT_BITS", "SAMPLE_BITS", "Capture", "Harness",
           "probability", "lfsr_seed"]

PROBABILITY_BITS = 16  #: ``gap`` and ``stall`` are probabilities in units of 2**-16
SEED_BITS = 32  #: width of each LFSR
COUNT_BITS = 32  #: width of the capture record counters
SAMPLE_BITS = 16  #: width of the sample counter (samples per ``go``)

# x^32 + x^22 + x^2 + x + 1, a maximal-length Fibonacci LFSR (Xilinx XAPP052 tap table).
_TAPS = (31, 21, 1, 0)


def probability(p: float) -> int:
    """Return the ``gap`` / ``stall`` port value for probability ``p`` (0 gives no stalls)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"Probability must be in [0, 1), not {p!r}")
    return min((1 << PROBABILITY_BITS) - 1, round(p * (1 << PROBABILITY_BITS)))


def lfsr_seed(seed: int, stream: int) -> int:
    """Return a non-zero LFSR seed for ``stream`` (0: input gaps, 1: back-pressure) of ``seed``."""
    value = (seed * 0x9E3779B1 + stream * 0x7F4A7C15 + 0x2545F491) & ((1 << SEED_BITS) - 1)
    return value or 1


def _lfsr_advance(state):
    """``state`` advanced by PROBABILITY_BITS steps, so each cycle draws fresh bits.

    The steps are composed in Python (each new bit is the XOR of a set of old bits), so the
    hardware is one small XOR per bit rather than a chain of sixteen.
    """
    bits = [{i} for i in range(SEED_BITS)]  # new bit i = XOR of the old bits in bits[i]
    for _ in range(PROBABILITY_BITS):
        feedback = set()
        for tap in _TAPS:
            feedback ^= bits[tap]
        bits = [feedback] + bits[:-1]
    return [functools.reduce(operator.xor, (state[i] for i in sorted(taps))) for taps in bits]


class Capture:
    """One harness memory: its record layout, records per word and capacity (derived once).

    Records are packed ``per_word`` to a memory word, record ``word * per_word + k`` in bits
    ``[k * record_bits, (k + 1) * record_bits)``, so the testbench moves many records per
    simulator call. The words are plain bit vectors rather than ``ArrayLayout`` views: a view of
    hundreds of records would name every field of every record in the Verilog (megabytes, and a
    slow Verilator build).
    """

    def __init__(self, name: str, record, capacity: int, word_bits: int):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"Capacity of {name!r} must be a positive integer, not {capacity!r}")
        self.name = name
        self.record = record
        self.record_bits = Shape.cast(record).width
        self.capacity = capacity
        self.per_word = max(1, min(capacity, word_bits // self.record_bits))
        self.depth = max(2, -(-capacity // self.per_word))
        self.word_bits = self.per_word * self.record_bits


class Harness(wiring.Component):
    """Plays a batch of samples from a stimulus memory into a core and captures its outputs.

    A run: write the input events of every sample, in order (the spiking inputs of each
    timestep, each timestep closed by an ``eot`` event, exactly what the core's ``i`` stream
    takes) through ``stim_*``; set ``samples``, ``timesteps``, ``gap``, ``stall`` and the seeds;
    pulse ``go`` (``done`` falls). Per sample the harness pulses the core's ``start`` and
    streams the sample's events until it has sent ``timesteps`` end-of-timestep events and the
    core is done. Captured meanwhile, each into its own memory, in order:

    - ``probe_<layer>``: every neuron update of the layer, ``{neuron, spike, v}``;
    - ``out``: every event taken from the core's ``o`` stream, ``{addr, eot}``;
    - ``cycles``: the core's ``cycles`` + 1 (cycles since ``start``, this one included) at each
      ``eot`` taken from ``o``.

    After the last sample the partial capture words are padded with zero records and written;
    then ``done`` rises. ``count_<capture>`` says how many records each holds; while the
    harness is idle, ``read_<capture>`` is word ``read_addr`` of each (one cycle after
    ``read_addr``). A capture that fills up stops recording and raises ``overflow``.

    Input idle cycles and output back-pressure come from two 32-bit LFSRs (seeded at ``go``,
    advanced 16 steps per cycle): a cycle stalls when the LFSR's low 16 bits are below the
    threshold, so a threshold of 0 never stalls (:func:`probability`). The input stream keeps
    ``valid`` and its event until the core takes it.

    Parameters
    ----------
    core : wiring.Component
        The core, not yet elaborated, with :class:`~snnhw.hw.core.Core`'s ports (``i``, ``o``,
        ``start``, ``timesteps``, ``done``, ``cycles``, ``probe_<layer>``); the harness
        only reads its signature. Cores that load synapses at run time are not supported.
    stimulus : int
        Capacity of the stimulus memory in events.
    capacity : mapping of str to int
        Capacity in records of each capture: ``probe_<layer>`` for every layer, ``out``
        and ``cycles``.
    word_bits : int
        Target width of a capture memory word; records are packed as many to a word as fit
        (wide words: fewer reads from the testbench).
    stimulus_bits : int
        The same for the stimulus memory (narrow: its word is decoded every cycle).

    Members
    -------
    go : In(1)
        Start a run (one cycle).
    done : Out(1)
        The run is complete.
    samples : In(SAMPLE_BITS)
        Samples in the run.
    timesteps : In(core's timesteps width)
        Timesteps per sample.
    gap, stall : In(PROBABILITY_BITS)
        Probability (units of 2**-16) of an idle input cycle and of a back-pressure cycle.
    gap_seed, stall_seed : In(SEED_BITS)
        LFSR seeds, loaded at ``go``; must not be 0 (:func:`lfsr_seed`).
    stim_addr, stim_data, stim_en : In
        Stimulus write port: ``stimulus.per_word`` events a word, packed as capture records
        are (:class:`Capture`).
    read_addr : In
        Word address read from every capture memory.
    read_<capture> : Out(per_word * record_bits)
        Word ``read_addr`` of the capture, one cycle later.
    count_<capture> : Out(COUNT_BITS)
        Records captured since ``go``.
    overflow : Out(1)
        A capture filled up during the run (its later records are lost).
    """

    def __init__(self, core: wiring.Component, *, stimulus: int, capacity: Mapping[str, int],
                 word_bits: int = 1024, stimulus_bits: int = 64):
        self._MustUse__silence = True  # never built if a parameter is wrong: do not warn
        if not isinstance(core, wiring.Component):
            raise TypeError(f"Core must be a wiring.Component, not {core!r}")
        members = core.signature.members
        missing = [name for name in ("i", "o", "start", "timesteps", "done", "cycles")
                   if name not in members]
        if missing:
            raise ValueError(f"Core must have the ports of snnhw.hw.Core; {core!r} lacks "
                             f"{', '.join(missing)}")
        if "load" in members:
            raise ValueError("Core must not load its synapses at run time (large_ram); the "
                             "harness has no loader")
        if not isinstance(stimulus, int) or stimulus < 1:
            raise ValueError(f"Stimulus capacity must be a positive integer, not {stimulus!r}")
        for what, bits in (("Word width", word_bits), ("Stimulus word width", stimulus_bits)):
            if not isinstance(bits, int) or bits < 1:
                raise ValueError(f"{what} must be a positive integer, not {bits!r}")
        self.core = core
        self.layers = [name[len("probe_"):] for name in members if name.startswith("probe_")]
        event_in = members["i"].signature.members["payload"].shape
        event_out = members["o"].signature.members["payload"].shape
        self.stimulus = Capture("stimulus", event_in, stimulus, stimulus_bits)
        records = {}
        for layer in self.layers:
            probe = members[f"probe_{layer}"].signature.members
            records[f"probe_{layer}"] = data.StructLayout({
                "neuron": probe["neuron"].shape, "spike": 1, "v": probe["v"].shape})
        records["out"] = event_out
        records["cycles"] = Shape.cast(members["cycles"].shape)
        unknown = sorted(set(capacity) - set(records))
        absent = [name for name in records if name not in capacity]
        if unknown or absent:
            raise ValueError(f"Capacity must name exactly the captures {', '.join(records)}, "
                             f"not {', '.join(sorted(capacity))}")
        self.captures = {name: Capture(name, record, capacity[name], word_bits)
                         for name, record in records.items()}
        read_depth = max(c.depth for c in self.captures.values())
        ports = {
            "go": In(1),
            "done": Out(1),
            "samples": In(SAMPLE_BITS),
            "timesteps": In(members["timesteps"].shape),
            "gap": In(PROBABILITY_BITS),
            "stall": In(PROBABILITY_BITS),
            "gap_seed": In(SEED_BITS),
            "stall_seed": In(SEED_BITS),
            "stim_addr": In(range(self.stimulus.depth)),
            "stim_data": In(self.stimulus.word_bits),
            "stim_en": In(1),
            "read_addr": In(range(read_depth)),
            "overflow": Out(1),
        }
        for name, capture in self.captures.items():
            ports[f"read_{name}"] = Out(capture.word_bits)
            ports[f"count_{name}"] = Out(COUNT_BITS)
        super().__init__(ports)
        self._MustUse__silence = False

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core

        # -- control: one run of `samples` samples ------------------------------------------------
        running = Signal()  # between go and done
        starting = Signal()  # pulses the core's start
        feeding = Signal()  # a sample is running
        sample = Signal(SAMPLE_BITS)
        sent_eots = Signal.like(self.timesteps)  # end-of-timestep events sent this sample
        m.d.comb += [core.start.eq(starting), core.timesteps.eq(self.timesteps)]

        # -- LFSRs: idle input cycles and output back-pressure ---------------------------------
        def draw(seed, threshold):
            state = Signal(SEED_BITS)
            bits = _lfsr_advance(state)
            with m.If(self.go):
                m.d.sync += state.eq(seed)
            with m.Else():
                m.d.sync += [state[i].eq(bit) for i, bit in enumerate(bits)]
            return state[:PROBABILITY_BITS] < threshold

        idle = draw(self.gap_seed, self.gap)
        stalled = draw(self.stall_seed, self.stall)

        # -- stimulus: memory -> core.i ---------------------------------------------------------
        stim = self.stimulus
        m.submodules.stimulus = stim_mem = Memory(shape=stim.word_bits, depth=stim.depth, init=[])
        stim_wr = stim_mem.write_port()
        # Asynchronous read: the event at the pointer is on `i` in the cycle the pointer moves
        # to it, so the stream runs back to back (this memory only ever lives in simulation).
        stim_rd = stim_mem.read_port(domain="comb")
        m.d.comb += [stim_wr.addr.eq(self.stim_addr), stim_wr.data.eq(self.stim_data),
                     stim_wr.en.eq(self.stim_en)]
        stim_word = Signal(range(stim.depth + 1))
        stim_lane = Signal(range(stim.per_word))
        holding = Signal()  # valid was raised and the core has not taken the event yet
        m.d.comb += [
            stim_rd.addr.eq(stim_word),
            core.i.payload.eq(stim_rd.data.word_select(stim_lane, stim.record_bits)),
            core.i.valid.eq(feeding & (sent_eots != self.timesteps) & (holding | ~idle)),
        ]
        m.d.sync += holding.eq(core.i.valid & ~core.i.ready)
        with m.If(core.i.valid & core.i.ready):
            with m.If(stim_lane == stim.per_word - 1):
                m.d.sync += [stim_lane.eq(0), stim_word.eq(stim_word + 1)]
            with m.Else():
                m.d.sync += stim_lane.eq(stim_lane + 1)
            with m.If(core.i.payload.eot):
                m.d.sync += sent_eots.eq(sent_eots + 1)

        # -- captures: core outputs -> memories -------------------------------------------------
        # Each capture packs records into a word register (shifting right, so the first record
        # of a word ends in its lowest bits) and writes the memory once per full word: no wide
        # byte-enable logic runs every cycle. At the end of a run the partial words are padded
        # out (FLUSH). The read ports run only while the harness is idle.
        m.d.comb += core.o.ready.eq(~stalled)
        taken = core.o.valid & core.o.ready
        flushing = Signal()
        flushed = []  # per capture: its partial word has been written
        overflows = []

        def capture(name, valid, record):
            cap = self.captures[name]
            mem = Memory(shape=cap.word_bits, depth=cap.depth, init=[])
            m.submodules[f"capture_{name}"] = mem
            wr = mem.write_port()
            rd = mem.read_port()
            count = getattr(self, f"count_{name}")
            packed = Signal(cap.word_bits, name=f"{name}_packed")
            word = Signal(range(cap.depth + 1), name=f"{name}_word")
            lane = Signal(range(cap.per_word), name=f"{name}_lane")
            full = Signal(name=f"{name}_full")
            real = valid & running & ~full
            pad = flushing & ~real & (lane != 0)
            shifted = Cat(packed[cap.record_bits:], Mux(real, Value.cast(record), 0))
            m.d.comb += [
                rd.addr.eq(self.read_addr), rd.en.eq(~running),
                getattr(self, f"read_{name}").eq(rd.data),
                wr.addr.eq(word), wr.data.eq(shifted),
                wr.en.eq((real | pad) & (lane == cap.per_word - 1)),
            ]
            with m.If(self.go):
                m.d.sync += [count.eq(0), word.eq(0), lane.eq(0), full.eq(0)]
            with m.Elif(real | pad):
                m.d.sync += packed.eq(shifted)
                with m.If(lane == cap.per_word - 1):
                    m.d.sync += [lane.eq(0), word.eq(word + 1)]
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
            with m.If(real):
                m.d.sync += count.eq(count + 1)
                with m.If(count == cap.capacity - 1):
                    m.d.sync += full.eq(1)
            flushed.append(lane == 0)
            overflows.append(full & valid & running)

        for layer in self.layers:
            probe = getattr(core, f"probe_{layer}")
            record = Signal(self.captures[f"probe_{layer}"].record, name=f"probe_{layer}_record")
            m.d.comb += [record.neuron.eq(probe.neuron), record.spike.eq(probe.spike),
                         record.v.eq(probe.v)]
            capture(f"probe_{layer}", probe.valid, record)
        capture("out", taken, core.o.payload)
        capture("cycles", taken & core.o.payload.eot, (core.cycles + 1)[:len(core.cycles)])

        with m.If(self.go):
            m.d.sync += self.overflow.eq(0)
        for lost in overflows:
            with m.If(lost):
                m.d.sync += self.overflow.eq(1)

        # -- run control ---------------------------------------------------------------------------
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [self.done.eq(0), sample.eq(0), stim_word.eq(0),
                                 stim_lane.eq(0), running.eq(1)]
                    m.next = "START"
            with m.State("START"):
                with m.If(sample == self.samples):  # also a run of 0 samples
                    m.next = "FLUSH"
                with m.Else():
                    m.d.comb += starting.eq(1)
                    m.d.sync += sent_eots.eq(0)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += feeding.eq(1)
                with m.If(core.done & (sent_eots == self.timesteps)):
                    m.d.sync += sample.eq(sample + 1)
                    m.next = "START"
            with m.State("FLUSH"):
                m.d.comb += flushing.eq(1)
                with m.If(functools.reduce(operator.and_, flushed)):
                    m.d.sync += [running.eq(0), self.done.eq(1)]
                    m.next = "IDLE"
        return m
