"""The experiments: what runs behind each figure, the figures driver and the fit to the recordings.

- :mod:`.registry` — the experiment and figure registries (``EXPERIMENTS``, ``FIGURES``);
- :mod:`.figures` — ``olfacto figures``: run or reuse each experiment, plot, ``summary.json``;
- :mod:`.chapter1`, :mod:`.chapter2`, :mod:`.real_odors` — the computations that are not plain sweeps;
- :mod:`.fit` — ``olfacto fit``: the model under the recordings' protocol on a grid, fitted per region.
"""
