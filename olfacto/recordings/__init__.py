"""Measured data and the experiment's protocol: one code path for recordings and model.

- :mod:`.glomeruli` — the measured glomerular odor responses (the ``dataset`` odor library);
- :mod:`.ipsicontra` — the bilateral single-unit recordings (Grimaud et al. 2024);
- :mod:`.protocol` — the experiment's measures (pure NumPy/SciPy);
- :mod:`.experiment` — those measures per recorded region;
- :mod:`.virtual` — the model under the recordings' protocol.
"""
