"""Design-space exploration: sweep recipes, lane counts and boards on Dask; Pareto fronts.

:mod:`.space` loads and checks a space file, :mod:`.tasks` is what runs on the workers (train,
export, evaluate one point), :mod:`.verify` co-simulates and builds the best points
(``--verify``), :mod:`.sweep` drives them on a Dask client and :mod:`.results`
writes ``points.csv``, ``points.json``, ``pareto.json`` and ``report.html``.
"""
