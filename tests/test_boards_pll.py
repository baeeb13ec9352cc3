"""The core's clock on a board: PLL settings (checked against icepll/ecppll), the clock rule,
bad ``--clock`` values, and the PLL in the generated design (no place and route)."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snnhw.boards.build import _platform, board_plan
from snnhw.boards.config import Family, find_board
from snnhw.boards.pll import (PLL_LIMITS, Clock, clock_candidates, pll_settings, resolve_clock)
from snnhw.boards.top import BoardTop
from snnhw.cli import main
from snnhw.errors import ParameterError
from snnhw.network import save
from snnhw.plan import CorePlan
from snnhw.random_networks import random_network

TOOLS = Path(sys.executable).parent


@pytest.fixture(scope="module")
def net():
    return random_network(np.random.default_rng(4), 16, [16, 4], density=0.5, timesteps=8,
                          name="small")


def _params(clock: Clock) -> dict:
    return dict(clock.pll.params)


def test_ice40_settings_stay_in_the_pll_limits():
    settings = pll_settings(Family.ICE40, 12)
    limits = PLL_LIMITS[Family.ICE40]
    assert len(settings) == len({s.fout_mhz for s in settings}) == 180
    assert settings[0].fout_mhz == 16.125 and settings[-1].fout_mhz == 270
    for s in settings:
        p = dict(s.params)
        fvco = 12 / (p["DIVR"] + 1) * (p["DIVF"] + 1)
        assert limits.fvco[0] <= fvco <= limits.fvco[1]
        assert s.fout_mhz == pytest.approx(fvco / 2 ** p["DIVQ"])
        assert limits.fout[0] <= s.fout_mhz <= limits.fout[1]
    assert pll_settings(Family.XILINX7, 100) == [] and pll_settings(Family.ICE40, 5) == []


def test_the_clock_is_the_highest_the_pll_makes_not_above_the_request():
    ice, ecp = find_board("icebreaker"), find_board("ulx3s-85f")
    assert resolve_clock(ice, 30) == Clock(30.0, resolve_clock(ice, 30).pll)
    assert _params(resolve_clock(ice, 30)) == {"DIVR": 0, "DIVF": 79, "DIVQ": 5,
                                               "FILTER_RANGE": 1}
    assert resolve_clock(ice, 33.3).mhz == 33.0  # icepll would pick 33.0 too; 33.75 is above
    assert resolve_clock(ice, 41.24).mhz == 40.5 and resolve_clock(ice, 41.25).mhz == 41.25
    assert resolve_clock(ice, 270).mhz == 270 and resolve_clock(ice, 269.9).mhz == 264
    assert resolve_clock(ecp, 57).mhz == 56.25  # ecppll would pick 57.14, which is above
    assert _params(resolve_clock(ecp, 57)) == {"CLKI_DIV": 4, "CLKFB_DIV": 9, "CLKOP_DIV": 11}
    # The oscillator itself needs no PLL; "board" asks for it; None and "auto" ask for a search.
    assert resolve_clock(ice, 12) == resolve_clock(ice, "board") == Clock(12.0)
    assert resolve_clock(ice, 16) == Clock(12.0)  # below the PLL's lowest, 16.125
    assert resolve_clock(ice, 16.125).mhz == 16.125
    assert resolve_clock(ecp, 25) == Clock(25.0)
    assert resolve_clock(ice, None) is None and resolve_clock(ice, "auto") is None
    candidates = clock_candidates(ecp)
    assert [c.mhz for c in candidates].count(25) == 1 and candidates[0].mhz == 3.125
    assert [c for c in candidates if c.mhz == 25] == [Clock(25.0)]
    assert [c.mhz for c in clock_candidates(find_board("arty-a7-35"))] == [100]


@pytest.mark.parametrize("request_mhz", [16.2, 30, 33.3, 47.9, 57, 100, 150, 201, 270])
def test_ice40_settings_match_icepll(request_mhz):
    clock = resolve_clock(find_board("icebreaker"), request_mhz)
    out = subprocess.run([TOOLS / "yowasp-icepll", "-i", "12", "-o", f"{clock.mhz}"],
                         capture_output=True, text=True, check=True).stdout
    achieved = float(re.search(r"F_PLLOUT:\s+([\d.]+) MHz \(achieved\)", out).group(1))
    told = {k: int(v) for k, v in re.findall(r"^(DIVR|DIVF|DIVQ|FILTER_RANGE):\s+(\d+)", out,
                                             re.MULTILINE)}
    assert achieved == pytest.approx(clock.mhz, abs=5e-4) and told == _params(clock)


@pytest.mark.parametrize("request_mhz", [10, 33.4, 57, 62.5, 100, 150])
def test_ecp5_settings_match_ecppll(request_mhz, tmp_path):
    clock = resolve_clock(find_board("ulx3s-85f"), request_mhz)
    out = subprocess.run([TOOLS / "yowasp-ecppll", "-i", "25", "-o", f"{clock.mhz}", "-f",
                          "pll.v"], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    achieved = float(re.search(r"clkout0 frequency: ([\d.]+)", out).group(1))
    clki, clkfb, clkop = (int(x) for x in re.findall(r"divisor: (\d+)", out))
    ours = _params(clock)
    assert achieved == pytest.approx(clock.mhz, abs=1e-3)
    assert (clki, clkfb) == (ours["CLKI_DIV"], ours["CLKFB_DIV"])
    # CLKOP_DIV puts the oscillator nearest 600 MHz (ecppll breaks exact ties in float noise).
    assert abs(clock.mhz * clkop - 600) == pytest.approx(abs(clock.mhz * ours["CLKOP_DIV"] - 600))


ICE_RANGE = ("a frequency in MHz from 12 to 270 (the 12 MHz oscillator, or the SB_PLL40 PLL's "
             "16.125..270 MHz from it) or 'board'")


@pytest.mark.parametrize("clock, got", [
    (0, "0"), (-5, "-5"), (300, "300"), (270.5, "270.5"), (11.9, "11.9"), (float("nan"), "nan"),
])
def test_bad_clocks_name_the_range(clock, got):
    with pytest.raises(ParameterError) as error:
        resolve_clock(find_board("icebreaker"), clock)
    assert str(error.value) == f"clock: expected {ICE_RANGE}, got {got}"


def test_a_board_without_a_pll_takes_only_its_oscillator():
    arty = find_board("arty-a7-35")
    assert resolve_clock(arty, 100) == Clock(100.0)
    for bad in (50, 120):
        with pytest.raises(ParameterError) as error:
            resolve_clock(arty, bad)
        assert str(error.value) == (f"clock: expected 'board' or 100 (the oscillator: arty-a7-35 "
                                    f"has no PLL snnhw can drive), got {bad}")
    ecp = find_board("ulx3s-85f")
    with pytest.raises(ParameterError, match=r"^clock: expected a frequency in MHz from 3.125 to "
                                             r"400 \(the 25 MHz oscillator, or the EHXPLLL PLL's "
                                             r"3.125..400 MHz from it\) or 'board', got 3$"):
        resolve_clock(ecp, 3)


@pytest.mark.parametrize("value, message", [
    ("300", f"--clock: expected {ICE_RANGE}, got 300"),
    ("-1", f"--clock: expected {ICE_RANGE}, got -1"),
    ("fast", "--clock: expected a frequency in MHz, 'board' or 'auto', got 'fast'"),
])
def test_cli_bad_clock_is_one_line_and_writes_nothing(capsys, tmp_path, net, value, message):
    save(net, tmp_path / "small")
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / "small"), "--board", "icebreaker", "-o", str(out),
                 f"--clock={value}"]) == 2
    assert capsys.readouterr().err == f"snnhw: error: {message}\n"
    assert not out.exists()


def _design(board_name: str, net, clock) -> tuple[BoardTop, str, Path]:
    """Prepare the board's platform build (no tools run); return the top, RTLIL, build dir."""
    board = find_board(board_name)
    top = BoardTop(board, board_plan(CorePlan.build(net), board), None,
                   resolve_clock(board, clock))
    return top, board, _platform(board).prepare(top, name="t", emit_src=False)


def test_ice40_design_has_the_pll_and_a_uart_at_its_clock(net, tmp_path):
    top, board, prepared = _design("icebreaker", net, 30)
    rtlil = (prepared.extract(tmp_path / "ice") / "t.il").read_text()
    pll = rtlil[rtlil.index("cell \\SB_PLL40_PAD"):]
    pll = pll[:pll.index("  end")]
    for line in ("parameter \\DIVR 4'0000", "parameter \\DIVF 7'1001111",
                 "parameter \\DIVQ 3'101", "parameter \\FILTER_RANGE 3'001",
                 "parameter \\FEEDBACK_PATH \"SIMPLE\"", "connect \\PACKAGEPIN \\clk12_0__io"):
        assert line in pll
    # The UART counts the PLL's cycles: 30 MHz / 3 Mbaud, not 12 MHz / 3 Mbaud.
    assert top.top.uart_rx.divisor == top.top.uart_tx.divisor == round(30e6 / 3e6) == 10
    # The platform's own clock domain (its SB_GB / power-on timer on the pin clock) is not made.
    assert "SB_GB" not in rtlil


def test_ecp5_design_has_the_pll(net, tmp_path):
    top, board, prepared = _design("ulx3s-85f", net, 57)
    rtlil = (prepared.extract(tmp_path / "ecp") / "t.il").read_text()
    assert rtlil.count("cell \\EHXPLLL") == 1
    for line in ("parameter \\CLKI_DIV 4", "parameter \\CLKFB_DIV 9", "parameter \\CLKOP_DIV 11",
                 "parameter \\CLKOP_CPHASE 10", "attribute \\FREQUENCY_PIN_CLKOP \"56.25\""):
        assert line in rtlil
    assert top.top.uart_rx.divisor == round(56.25e6 / 1e6)
    assert "SGSR" not in rtlil  # the platform's reset synchroniser belongs to its own domain


def test_board_clock_has_no_pll(net, tmp_path):
    top, board, prepared = _design("icebreaker", net, "board")
    rtlil = (prepared.extract(tmp_path / "board") / "t.il").read_text()
    assert "PLL" not in rtlil and top.top.uart_rx.divisor == round(12e6 / 3e6) == 4


def test_lock_reset_holds_the_domain_until_after_lock():
    from amaranth.sim import Simulator
    from snnhw.boards.pll import LockReset
    dut = LockReset(5)
    seen = []

    async def bench(ctx):
        for cycle in range(30):
            ctx.set(dut.locked, 3 <= cycle < 18 or cycle >= 20)
            await ctx.tick()
            seen.append(ctx.get(dut.rst))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # Locked from cycle 3: through the two synchroniser stages at 4, then the timer counts 5
    # and the reset register follows (out of reset after cycle 9's edge). Lost at 18: reset
    # from the edge of cycle 21, two stages and the register later; locked again at 20: out of
    # reset 2 + 5 + 1 cycles after that, from 27.
    assert seen == [1] * 10 + [0] * 11 + [1] * 6 + [0] * 3

