"""Board description files (installed as ``snnhw.board_files``); see docs/boards.md."""
