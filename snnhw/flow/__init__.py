"""``snnhw flow``: from data to verified hardware in one command, and the report."""
