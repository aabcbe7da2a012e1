"""The engine: compiled programs, the one run loop, records, Datasets, devices, memory, storage.

- :mod:`.records` — what a run saves and when (Every / At / End), the default records;
- :mod:`.programs` — the compiled programs of a Spec (init, advance, each record);
- :mod:`.loop` — :func:`~.loop.build` and :func:`~.loop.run_batch`, the run loop written once; :func:`~.loop.run`;
- :mod:`.dataset` — a batch's records as an ``xarray.Dataset``;
- :mod:`.result` — :class:`~.result.Result`, a finished run with its verbs;
- :mod:`.devices` — configs that share a program; the batch axis placed over devices;
- :mod:`.sharding` — one network sharded over devices along its neuron axis (and jax.distributed);
- :mod:`.resources` — memory needed against memory available;
- :mod:`.storage` — atomic netCDF and figure files; :mod:`.progress`, :mod:`.runtime`.
"""
