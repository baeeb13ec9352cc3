"""Bring your own network: float SNNs from snnTorch and NIR graphs, quantized into the integer
network (DESIGN.md §1) with the neuron models of format version 2.

:mod:`.quantize` holds the float description both frontends read into (:class:`FloatLayer`) and
the quantization; :mod:`.snntorch` reads an ``nn.Sequential`` of Linear / Leaky, :mod:`.nir`
reads and writes NIR graphs. Nothing here is imported by the rest of snnhw except the CLI.
"""
