"""Training and compression of LIF networks in PyTorch, exported exactly to the integer network.

``snnhw.train`` is the only part of snnhw that imports torch. This ``__init__``, ``recipe`` and
``state`` (the state levels, numpy only) import nothing heavy, so the CLI can list and check
commands without loading torch; the modules that need torch (``model``, ``quant``, ``prune``,
``cluster``, ``hessian``, ``export``, ``fit``, ``pipeline``) import it themselves.
"""
