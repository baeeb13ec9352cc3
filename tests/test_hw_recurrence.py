"""The event merger and fork of a recurrent layer (snnhw/hw/recurrence.py), simulated in Amaranth
with random stalls on every stream: each timestep's merged events are exactly its external
events and the layer's own events of the timestep before, re-addressed, closed by one ``eot``."""

from collections import Counter

import numpy as np
import pytest
from amaranth.sim import Simulator

from snnhw.hw.recurrence import EventFork, EventMerger

EXTERNAL, SIZE = 5, 3


def _events(rng, timesteps, count):
    """Per timestep, a few distinct addresses below ``count``, then the eot: [(addr, eot)]."""
    stream = []
    for _ in range(timesteps):
        chosen = rng.choice(count, rng.integers(0, count + 1), replace=False)
        stream += [(int(a), 0) for a in chosen] + [(0, 1)]
    return stream


def _run_merger(seed, rates, timesteps=6):
    """Merge random streams; ``rates`` are the chances that the external and the own stream
    offer their next event in a cycle (a slow own stream is the engine's sweep)."""
    rng = np.random.default_rng(seed)
    external = _events(rng, timesteps, EXTERNAL)
    own = _events(rng, timesteps, SIZE)  # own events of t join timestep t + 1
    dut = EventMerger(EXTERNAL, SIZE)
    out = []

    async def testbench(ctx):
        sources = [(dut.i, external, [0], rates[0]), (dut.own, own, [0], rates[1])]
        for _ in range(3000):
            for port, events, at, rate in sources:
                offer = at[0] < len(events) and rng.random() < rate
                ctx.set(port.valid, offer)
                if offer:
                    ctx.set(port.payload.addr, events[at[0]][0])
                    ctx.set(port.payload.eot, events[at[0]][1])
            ready = rng.random() < 0.7
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                out.append((ctx.get(dut.o.payload.addr), ctx.get(dut.o.payload.eot)))
            for port, _, at, _ in sources:
                if ctx.get(port.valid) and ctx.get(port.ready):
                    at[0] += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return external, own, out


def _by_timestep(events):
    """Split a stream at its eots: the non-eot addresses of each timestep (and the tail)."""
    groups, current = [], []
    for addr, eot in events:
        if eot:
            groups.append(current)
            current = []
        else:
            current.append(addr)
    return groups + [current]


@pytest.mark.parametrize("rates", [(0.6, 0.6), (0.9, 0.1), (0.1, 0.9)])
@pytest.mark.parametrize("seed", range(3))
def test_merger_closes_each_timestep_after_both_streams(seed, rates):
    external, own, out = _run_merger(seed, rates)
    ext_steps, own_steps, out_steps = (_by_timestep(s) for s in (external, own, out))
    timesteps = len(ext_steps) - 1
    # Not vacuous: own events that a wrong merger would put in their own timestep exist.
    assert any(own_steps[t] for t in range(timesteps - 1))
    assert len(out_steps) - 1 == timesteps  # one eot per timestep
    for t in range(timesteps):
        previous = own_steps[t - 1] if t else []  # no own events before t = 0
        want = Counter(ext_steps[t]) + Counter(a + EXTERNAL for a in previous)
        assert Counter(out_steps[t]) == want, t
    # After the last eot: the last timestep's own events (the engine takes and never sweeps them).
    assert Counter(out_steps[-1]) == Counter(a + EXTERNAL for a in own_steps[timesteps - 1])


@pytest.mark.parametrize("seed", range(3))
def test_fork_gives_every_event_to_both_outputs_once(seed):
    rng = np.random.default_rng(seed)
    events = _events(rng, 8, 7)
    dut = EventFork(3)
    got = {"a": [], "b": []}

    async def testbench(ctx):
        sent = 0
        for _ in range(1500):
            ctx.set(dut.i.valid, sent < len(events))
            if sent < len(events):
                ctx.set(dut.i.payload.addr, events[sent][0])
                ctx.set(dut.i.payload.eot, events[sent][1])
            for name in got:
                port = getattr(dut, name)
                ready = rng.random() < 0.5
                ctx.set(port.ready, ready)
                if ready and ctx.get(port.valid):
                    got[name].append((ctx.get(port.payload.addr), ctx.get(port.payload.eot)))
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                sent += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got["a"] == events == got["b"]
