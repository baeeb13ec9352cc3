"""snnhw: compile compressed spiking neural networks into verified FPGA cores."""

__version__ = "0.1.0"
