"""A behavioural SPI flash for cocotb: READ (0x03) and release from power-down (0xAB), mode 0.

It holds a flash image's bytes (``flash.bin``), samples the command and address on SCK's rising
edges while selected, and after READ's 24-bit address shifts out the bytes from there, MSB
first, each bit after a falling edge. Bytes past the end read as erased (0xFF). It counts the
commands it saw so a test can tell that the board read it.
"""

from __future__ import annotations

from cocotb.triggers import Edge, FallingEdge, First, RisingEdge

CMD_READ, CMD_WAKE = 0x03, 0xAB


class SPIFlash:
    """Drives ``cipo``; watches ``cs`` (high: selected), ``clk`` and ``copi``."""

    def __init__(self, cs, clk, copi, cipo, data: bytes):
        self.cs, self.clk, self.copi, self.cipo = cs, clk, copi, cipo
        self.data = bytes(data)
        self.commands: list[int] = []  #: each command byte received
        self.bytes_read = 0  #: data bytes shifted out
        self.cipo.value = 0

    async def run(self) -> None:
        while True:
            await RisingEdge(self.cs)
            await self._transaction()

    async def _transaction(self) -> None:
        """One selection: ends when ``cs`` falls (wherever it happens)."""
        received = 0  # bits sampled so far
        shift = 0
        while True:
            edge = await self._edge()
            if edge is None:
                return
            if edge == "rise":
                shift = (shift << 1) | int(self.copi.value)
                received += 1
                if received == 8:
                    self.commands.append(shift)
                    if shift != CMD_READ:
                        await self._deselected()
                        return
                if received == 32:
                    await self._read(shift & 0xFFFFFF)
                    return

    async def _read(self, address: int) -> None:
        """Shift out bytes from ``address`` on falling edges until deselected."""
        bit = 0
        while True:
            edge = await self._edge()
            if edge is None:
                return
            if edge == "fall":
                byte = self.data[address] if address < len(self.data) else 0xFF
                self.cipo.value = (byte >> (7 - bit)) & 1
                bit += 1
                if bit == 8:
                    bit, address = 0, address + 1
                    self.bytes_read += 1

    async def _edge(self) -> str | None:
        """The next SCK edge while selected: 'rise' or 'fall'; None once deselected."""
        if int(self.cs.value):
            await First(Edge(self.clk), FallingEdge(self.cs))
        if not int(self.cs.value):
            return None
        return "rise" if int(self.clk.value) else "fall"

    async def _deselected(self) -> None:
        if int(self.cs.value):
            await FallingEdge(self.cs)
