"""The model: the bilateral circuit and what it computes (MODEL.md).

- :mod:`.sparse` — the fixed-fan-in sparse matrix (synapses as indices + values);
- :mod:`.circuit` — bulbs, J, φ, the direct and indirect responses;
- :mod:`.odors` — odor environments and the breath stream;
- :mod:`.loss` — the alignment loss and its gradient;
- :mod:`.rules` — the learning rules, one object each; :mod:`.chunked` their exact chunked forms;
- :mod:`.component` — what a component is; :mod:`.projection`, :mod:`.recurrence` — the components;
- :mod:`.network` — World, State and the model's verbs (init, learn, respond, measure);
- :mod:`.measures` — the measures on probe odors and their registry;
- :mod:`.theory` — the mean-field predictions; :mod:`.prediction` — the prediction for one config (or why there is none).
"""
