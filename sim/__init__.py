"""Co-simulation: cocotb testbenches and the Verilator runner (installed as ``snnhw.sim``)."""
