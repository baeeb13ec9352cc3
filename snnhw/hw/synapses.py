"""Where a layer's synapse words live, and how run-time-loaded ones get there.

A layer's synapse memory is either a ROM initialised with the bitstream (block RAM), or a RAM
written at run time from a byte stream before the first sample: large single-port RAMs such as
the iCE40UP5K's SPRAM have no initial contents, but hold four times the block RAM of that part.
Both read one word a cycle with the data a cycle later, so the layer engine does not care which.

The load image (:meth:`snnhw.plan.CorePlan.load_image`) is the large-RAM layers' synapse words
in layer order, each word little-endian in ``ceil(word_bits / 8)`` bytes.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..plan import SPRAM_ADDR_BITS, SPRAM_DEPTH, SPRAM_WIDTH, Placement

__all__ = ["WriteSignature", "SynapseStore", "SynapseLoader"]


class WriteSignature(wiring.Signature):
    """A write port into a synapse store: ``data`` goes to ``addr`` in cycles with ``en``."""

    def __init__(self, depth: int, width: int):
        super().__init__({"addr": Out(range(max(2, depth))), "data": Out(width), "en": Out(1)})


class SynapseStore(wiring.Component):
    """One layer's synapse words: ``data`` is the word at the ``addr`` of the previous cycle.

    Parameters
    ----------
    words : list of int
        The words, for a ROM; for a large-RAM store only their count and width matter.
    width : int
        Bits per word.
    placement : Placement
        ``LARGE``: written at run time through ``write`` (no initial contents) instead of a ROM.
    spram : bool
        Build a large-RAM store from iCE40 SB_SPRAM256KA primitives rather than a generic
        memory (a ROM is block RAM either way).
    slice_bits : int or None
        Build a ROM as block RAMs side by side, each holding this many bits of every word
        (:meth:`snnhw.plan.CorePlan.synapse_slice_bits`); None: one memory, which the
        synthesis tool may also build from logic.

    Members
    -------
    addr : In(range(depth))
        Word to read.
    data : Out(width)
        The word read, one cycle after its address.
    write : In(WriteSignature(depth, width))
        Only in large RAM. A write takes the cycle's single port: no read happens then.
    """

    def __init__(self, words: list[int], width: int, *, placement: Placement = Placement.BLOCK,
                 spram: bool = False, slice_bits: int | None = None):
        if not isinstance(placement, Placement):
            raise TypeError(f"Placement must be a Placement, not {placement!r}")
        if slice_bits is not None and (not isinstance(slice_bits, int) or slice_bits < 1):
            raise ValueError(f"Slice width must be a positive integer, not {slice_bits!r}")
        self.words, self.width = list(words), max(1, width)
        self.slice_bits = None if slice_bits is None else min(self.width, slice_bits)
        self.depth = max(2, len(self.words))  # memories of depth 1 would have 0-bit addresses
        self.placement, self.spram = placement, spram
        members = {"addr": In(range(self.depth)), "data": Out(self.width)}
        if placement is Placement.LARGE:
            members["write"] = In(WriteSignature(self.depth, self.width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        if self.placement is Placement.BLOCK:
            # Width slices, each its own block RAM: a slice no deeper than a block RAM mode of
            # its width is read with no multiplexer after the blocks (one slice: the whole
            # word). In block RAM even when small: a ROM built from logic is a LUT tree after
            # the fetch's address select (MNIST fc2 on ECP5, 256 x 7 bits: 8.8 ns).
            slices = []
            attrs = {"rom_style": "block"} if self.slice_bits is not None else None
            for k, low in enumerate(range(0, self.width, self.slice_bits or self.width)):
                bits = min(self.slice_bits or self.width, self.width - low)
                init = [(word >> low) & ((1 << bits) - 1) for word in self.words]
                rom = Memory(shape=bits, depth=self.depth, init=init, attrs=attrs)
                m.submodules["rom" if bits == self.width else f"rom{k}"] = rom
                port = rom.read_port()
                m.d.comb += port.addr.eq(self.addr)
                slices.append(port.data)
            m.d.comb += self.data.eq(Cat(*slices))
            return m

        # One port, as SPRAM has: a write takes the address, and the read waits.
        addr = Signal(range(self.depth))
        m.d.comb += addr.eq(Mux(self.write.en, self.write.addr, self.addr))
        if not self.spram:
            m.submodules.ram = ram = Memory(shape=self.width, depth=self.depth, init=[])
            wr, rd = ram.write_port(), ram.read_port()
            m.d.comb += [
                wr.addr.eq(addr), wr.data.eq(self.write.data), wr.en.eq(self.write.en),
                rd.addr.eq(addr), rd.en.eq(~self.write.en), self.data.eq(rd.data),
            ]
            return m

        # A grid of SPRAMs: 16-bit slices of the word across, 16K-word banks down. The bank
        # of the read is registered to pick its output a cycle later.
        slices = -(-self.width // SPRAM_WIDTH)
        banks = -(-self.depth // SPRAM_DEPTH)
        bank = addr[SPRAM_ADDR_BITS:] if banks > 1 else Const(0, 1)
        read_bank = Signal(range(max(2, banks)))
        with m.If(~self.write.en):
            m.d.sync += read_bank.eq(bank)
        wide_data = Signal(slices * SPRAM_WIDTH)
        m.d.comb += wide_data.eq(self.write.data)
        outputs = []
        for b in range(banks):
            out = Signal(slices * SPRAM_WIDTH, name=f"bank{b}_data")
            outputs.append(out)
            for s in range(slices):
                m.submodules[f"spram_{b}_{s}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=addr[:SPRAM_ADDR_BITS],
                    i_DATAIN=wide_data[s * SPRAM_WIDTH:(s + 1) * SPRAM_WIDTH],
                    i_MASKWREN=Const(0b1111, 4), i_WREN=self.write.en,
                    i_CHIPSELECT=bank == b, i_CLOCK=ClockSignal(),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=out[s * SPRAM_WIDTH:(s + 1) * SPRAM_WIDTH])
        with m.Switch(read_bank):
            for b, out in enumerate(outputs):
                with m.Case(b):
                    m.d.comb += self.data.eq(out)
        return m


class SynapseLoader(wiring.Component):
    """Writes the load image, from a byte stream, into the large-RAM layers' synapse stores.

    Parameters
    ----------
    stores : dict of str to (words, width)
        For each large-RAM layer, in image order, its word count and word width.

    Members
    -------
    i : In(stream.Signature(8))
        The image, byte by byte (taken one a cycle until the image is complete).
    done : Out(1)
        The whole image has been written. Reset the loader to load again.
    write_<layer> : Out(WriteSignature)
        Per large-RAM layer, the write port of its store.
    """

    def __init__(self, stores: dict[str, tuple[int, int]]):
        self.stores = {name: (words, width) for name, (words, width) in stores.items()}
        members = {"i": In(stream.Signature(8)), "done": Out(1)}
        for name, (words, width) in self.stores.items():
            members[f"write_{name}"] = Out(WriteSignature(max(2, words), width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        loading = [(name, words, width) for name, (words, width) in self.stores.items() if words]
        if not loading:
            m.d.comb += self.done.eq(1)
            return m
        widest = max(-(-width // 8) for _, _, width in loading)
        earlier = Signal(8 * max(1, widest - 1))  # the bytes of the word received so far
        byte = Signal(range(max(2, widest)))
        addr = Signal(range(max(words for _, words, _ in loading) + 1))
        take = Signal()
        m.d.comb += [self.i.ready.eq(~self.done), take.eq(self.i.valid & self.i.ready)]
        # The writes leave through registers: the stores' single-port address select (write or
        # read) then starts at a flip-flop, not at the byte source's handshake. The last word
        # is written in the first cycle of ``done`` (no sample runs while loading).
        m.d.sync += [getattr(self, f"write_{name}").en.eq(0) for name, _, _ in loading]
        with m.FSM():
            for number, (name, words, width) in enumerate(loading):
                nbytes = -(-width // 8)
                following = (f"LOAD_{loading[number + 1][0]}" if number + 1 < len(loading)
                             else "DONE")
                port = getattr(self, f"write_{name}")
                with m.State(f"LOAD_{name}"):
                    word = (Cat(earlier[:8 * (nbytes - 1)], self.i.payload) if nbytes > 1
                            else self.i.payload)
                    m.d.sync += [port.addr.eq(addr), port.data.eq(word)]
                    with m.If(take):
                        m.d.sync += byte.eq(byte + 1)
                        if nbytes > 1:
                            m.d.sync += earlier.word_select(byte, 8).eq(self.i.payload)
                        with m.If(byte == nbytes - 1):
                            m.d.sync += port.en.eq(1)
                            m.d.sync += [byte.eq(0), addr.eq(addr + 1)]
                            with m.If(addr == words - 1):
                                m.d.sync += addr.eq(0)
                                m.next = following
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m
