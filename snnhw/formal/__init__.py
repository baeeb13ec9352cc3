"""Formal proofs about the generated RTL, run with SymbiYosys (see docs/formal.md).

One harness per property: each instantiates the generated hardware (:mod:`snnhw.hw`), states
what the environment may do (``Assume``) and what the RTL must do (``Assert``), and covers the
corners it depends on (``Cover``), so a proof under impossible assumptions cannot pass unseen.
"""

from .bound import ACCUMULATE_OVERHEAD, CycleBound, startup_cycles
from .engine import EngineReference
from .lif import LIFEquivalence, LIFSpec
from .protocol import StreamProtocol
from .restart import RestartEquivalence
from .sby import Mode, SbyResult, Verdict, run_sby

__all__ = ["run_sby", "Mode", "Verdict", "SbyResult", "LIFSpec", "LIFEquivalence",
           "StreamProtocol", "EngineReference", "CycleBound", "startup_cycles",
           "ACCUMULATE_OVERHEAD", "RestartEquivalence"]
