"""Boards: board files, the fit check, the UART top level and bitstream builds.

See docs/boards.md. The gateware and the build flow (:mod:`.top`, :mod:`.build`) are imported
on their own; this package's top level only reads board files and checks fits.
"""

from .config import Board, BoardError, board_names, find_board, load_board
from .fit import FitError, FitReport, check_fit, estimate

__all__ = ["Board", "BoardError", "board_names", "find_board", "load_board", "FitError",
           "FitReport", "check_fit", "estimate"]
