"""The integer spike encoders: numpy definition, file format, and the on-chip encoder (Amaranth
simulator) spike for spike against the numpy one over random seeds and feature bytes."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from snnhw.hw.encoder import FeatureEncoder
from snnhw.network import load, save
from snnhw.network.encoder import (Encoder, EncoderKind, encode_features, latency_step,
                                   lfsr_step, rate_draws)
from snnhw.network.format import NetworkFormatError
from snnhw.random_networks import random_network


def test_lfsr_is_maximal_length():
    state, seen = 1, 0
    while True:
        state = lfsr_step(state)
        seen += 1
        if state == 1:
            break
    assert seen == 0xFFFF


def test_rate_draws_follow_the_documented_order():
    x = np.array([[255, 0, 128, 7]], np.uint8)
    spikes = encode_features(Encoder("rate", 0xACE1), x, 3)
    draws = rate_draws(0xACE1, 12).reshape(3, 4)  # timestep-major
    np.testing.assert_array_equal(spikes[0], (draws < x).astype(np.uint8))
    assert spikes[0, :, 1].sum() == 0  # a zero byte never fires


def test_latency_and_direct_formulas():
    x = np.array([[255, 0, 128, 1, 127]], np.uint8)
    assert latency_step(x[0], 8).tolist() == [0, 7, 3, 7, 4]  # round((1 - x/255) * 7)
    spikes = encode_features(Encoder("latency"), x, 8)[0]
    assert spikes.sum(axis=0).tolist() == [1, 0, 1, 1, 1] and spikes[3, 2] == spikes[4, 4] == 1
    direct = encode_features(Encoder("direct"), x, 2)[0]
    assert direct.tolist() == [[1, 0, 1, 0, 0]] * 2


def test_encoder_in_the_network_file(tmp_path):
    net = random_network(np.random.default_rng(0), 6, [4], timesteps=3)
    save(net, tmp_path / "plain")
    assert "encoder" not in (tmp_path / "plain" / "network.yaml").read_text()
    assert load(tmp_path / "plain").encoder is None
    net.encoder = Encoder(EncoderKind.RATE, 4660)
    save(net, tmp_path / "rate")
    assert load(tmp_path / "rate").encoder == Encoder(EncoderKind.RATE, 4660)
    text = (tmp_path / "rate" / "network.yaml").read_text()
    for bad, message in [("seed: 4660", "encoder.seed: expected an integer in 1..65535, got 0"),
                         ("kind: rate", "encoder.kind: expected 'rate' or 'latency' or 'direct', "
                                        "got 'poisson'")]:
        (tmp_path / "rate" / "network.yaml").write_text(
            text.replace(bad, {"seed: 4660": "seed: 0", "kind: rate": "kind: poisson"}[bad]))
        with pytest.raises(NetworkFormatError, match=message):
            load(tmp_path / "rate")


def run_encoder(encoder: Encoder, features: np.ndarray, timesteps: int, seed: int = 0):
    """The on-chip encoder's spikes [samples, T, F] for feature bytes [samples, F], its output
    taken with random back-pressure; the first sample is begun, abandoned half-loaded, then
    begun again."""
    samples, size = features.shape
    dut = FeatureEncoder(encoder, size, timesteps, max(1, (size - 1).bit_length()))
    got = np.zeros((samples, timesteps, size), np.uint8)
    rng = np.random.default_rng(seed)
    ready = rng.random(100_000) < 0.7

    async def drive(ctx):
        ctx.set(dut.begin, 1)
        await ctx.tick()
        ctx.set(dut.begin, 0)
        for byte in features[0, :size // 2]:  # abandoned by the next begin
            ctx.set(dut.features.payload, int(byte))
            ctx.set(dut.features.valid, 1)
            await ctx.tick()
        ctx.set(dut.features.valid, 0)
        for n, sample in enumerate(features):
            ctx.set(dut.begin, 1)
            await ctx.tick()
            ctx.set(dut.begin, 0)
            for byte in sample:
                ctx.set(dut.features.payload, int(byte))
                ctx.set(dut.features.valid, 1)
                assert ctx.get(dut.features.ready)
                await ctx.tick()
            ctx.set(dut.features.valid, 0)
            step, cycle = 0, 0
            while step < timesteps:
                ctx.set(dut.events.ready, int(ready[cycle % len(ready)]))
                cycle += 1
                valid, eot, addr = (ctx.get(dut.events.valid), ctx.get(dut.events.payload.eot),
                                    ctx.get(dut.events.payload.addr))
                taken = valid and ctx.get(dut.events.ready)
                await ctx.tick()
                if taken and eot:
                    step += 1
                elif taken:
                    got[n, step, addr] = 1
            ctx.set(dut.events.ready, 0)
            await ctx.tick().repeat(3)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.run()
    return got


@pytest.mark.parametrize("kind", list(EncoderKind))
def test_on_chip_encoder_matches_numpy(kind):
    rng = np.random.default_rng(hash(kind.value) % 1000)
    for trial in range(2):
        seed = int(rng.integers(1, 0x10000))
        size, timesteps = int(rng.integers(3, 12)), int(rng.integers(1, 6))
        features = rng.integers(0, 256, (3, size)).astype(np.uint8)
        features[0, 0], features[1, 0] = 0, 255
        encoder = Encoder(kind, seed)
        got = run_encoder(encoder, features, timesteps, seed=trial)
        np.testing.assert_array_equal(got, encode_features(encoder, features, timesteps))
        if kind is EncoderKind.RATE:
            # A wrong seed is a different spike train: the comparison above would fail.
            other = encode_features(Encoder(kind, seed % 0xFFFF + 1), features, timesteps)
            assert (got != other).any()
