"""The device check (issue 21, item 5): `olfacto bench --device` must run on a CPU too, smaller.

Timings are not tested (benchmarks are not tests); what is: the command runs end to end on this backend,
writes its JSON, runs the sizes :func:`benchmarks.bench.device_sizes` chooses, and its learning reaches the
alignment of the same config run through ``olfacto.run`` (one code path)."""

from __future__ import annotations

import json

import pytest

from olfacto import cli


def test_device_sizes_are_the_mouse_scale_on_an_accelerator_and_smaller_on_a_cpu():
    from benchmarks import bench

    gpu, cpu = bench.device_sizes("gpu", False), bench.device_sizes("cpu", False)
    assert gpu["mouse_linear"]["circuit.n_cortex"] == 1_000_000 and gpu["mouse_linear"]["run.n_breaths"] == 10_000
    assert gpu["mouse_relu"]["circuit.activation"] == "relu" and gpu["mouse_relu"]["circuit.n_cortex"] == 1_000_000
    for name in ("mouse_linear", "mouse_relu"):  # K = pN = 100 (10 in the quick smoke size)
        for sizes in (gpu, cpu, bench.device_sizes("cpu", True)):
            c = sizes[name]
            assert round(c["circuit.n_cortex"] * c["circuit.connection_prob"]) in (100, 10)
        assert cpu[name]["circuit.n_cortex"] < gpu[name]["circuit.n_cortex"]


@pytest.mark.slow
def test_device_check_runs_on_the_cpu(tmp_path, capsys):
    import numpy as np

    import olfacto
    from benchmarks import bench

    path = tmp_path / "device.json"
    assert cli.main(["bench", "--device", "--quick", "--repeats", "1", "--json", str(path)]) == 0
    out = json.loads(path.read_text())["device"]
    assert out["platform"] == "cpu" and out["mouse_linear"]["device_memory"]["peak_gb"] is None  # CPU: not reported
    assert out["mouse_linear"]["plasticity"].startswith("chunked") and out["bandwidth"]["jax_triad_gb_s"] > 0
    printed = capsys.readouterr().out
    assert "device check (cpu):" in printed and "mouse relu" in printed
    cfg = bench._cfg(bench.device_sizes("cpu", True)["mouse_linear"])
    np.testing.assert_allclose(out["mouse_linear"]["final_alignment"], float(olfacto.run(cfg).dataset.alignment[-1]),
                               rtol=1e-6)


@pytest.mark.slow  # a bench at N = 10,000: 18 s of the everyday suite's 15 min
def test_the_record_benchmark_times_the_program_olfacto_run_records_with(tmp_path, capsys):
    """`olfacto bench --record` (issue 21, item 2) runs end to end at its quick size and times the record
    program that olfacto.run calls (the same compiled object, from programs.record's cache): the measures it
    computed are the run's at breath 0, to the bit."""
    import olfacto
    from benchmarks import bench
    from olfacto.engine import loop, programs, records

    path = tmp_path / "record.json"
    assert cli.main(["bench", "--record", "--quick", "--repeats", "1", "--json", str(path)]) == 0
    out = json.loads(path.read_text())["record"]
    assert set(out["activations"]) == {"linear", "relu"} and out["config"]["circuit.n_cortex"] == 10_000
    assert all(r["record_s"] > 0 and r["y_hat_s"] > 0 and r["measures_s"] > 0 for r in out["activations"].values())
    assert "one record of the default measures: N=10,000, K=50" in capsys.readouterr().out
    cfg = bench._cfg({**out["config"], "circuit.activation": "relu"})
    spec = loop.build([cfg]).spec
    m = records.MEASURES
    assert (spec, m.compute, m.cheap, m.constants) in programs._COMPILED  # the run's own program
    at_start = olfacto.run(cfg).dataset.isel(breath=0)
    for name, value in out["activations"]["relu"]["values"].items():
        assert value == float(at_start[name]), name


@pytest.mark.slow
def test_the_rewiring_benchmark_times_real_events(tmp_path, capsys):
    """`olfacto bench --rewiring --quick --activation relu` (issue 20) runs every rule end to end and the events it
    times are real ones: each replaced exactly ζ = 0.1 of the synapses (K = 50: 5 per neuron, a pool of 20); its
    whole runs of every rule did their five events."""
    path = tmp_path / "rewiring.json"
    assert cli.main(["bench", "--rewiring", "--quick", "--activation", "relu", "--repeats", "1",
                     "--json", str(path)]) == 0
    out = json.loads(path.read_text())["rewiring"]
    assert out["config"]["circuit.activation"] == "relu" and out["config"]["circuit.n_cortex"] == 10_000
    assert set(out["rules"]) == {"none", "magnitude", "hebbian", "gradient", "gradient, score_breaths 20", "cht"}
    for rule, row in out["rules"].items():
        if rule != "none":
            assert row["turnover"] == pytest.approx(0.1, abs=1e-6), rule
            assert row["event_s"] > 0 and "overhead_fraction" in row
    run = out["whole_run"]
    assert set(run["rules"]) == set(out["rules"]) and run["n_breaths"] == 5 * out["config"]["rewiring.every"]
    for rule, row in run["rules"].items():
        assert row["run_s"] > 0 and row.get("events") == (None if rule == "none" else 4), rule  # none at the end
    assert run["events"] == 4
    assert "rewiring: N=10,000, K=50, M=50, relu" in capsys.readouterr().out


@pytest.mark.slow
def test_the_sgd_benchmark_runs_alignment_vs_p_settings(tmp_path, capsys):
    """`olfacto bench --sgd --quick` (issue 21, items 3–4) times whole runs with the settings of
    experiments/ch1_alignment_vs_p.yaml (SGD instead of its first rule), and what it ran is olfacto.run's learning:
    the final alignment it reports is that of the same config run again, to the bit."""
    import olfacto
    from benchmarks import bench
    from olfacto import config

    path = tmp_path / "sgd.json"
    assert cli.main(["bench", "--sgd", "--quick", "--repeats", "1", "--json", str(path)]) == 0
    out = json.loads(path.read_text())["sgd"]
    experiment = config.validate({k: v for k, v in config.read_yaml("experiments/ch1_alignment_vs_p.yaml").items()
                                  if k != "sweep"})
    for key, value in out["config"].items():
        if key.split(".")[0] in ("circuit", "odors", "learning") and key != "learning.rule":
            assert config.get_dotted(experiment, key) == value, key
    assert [(r["n_cortex"], r["in_degree"]) for r in out["points"]] == [(500, 1), (500, 16)]
    for r in out["points"]:
        cfg = bench._cfg({**out["config"], "circuit.n_cortex": r["n_cortex"],
                          "circuit.connection_prob": r["in_degree"] / r["n_cortex"]})
        assert r["final_alignment"] == float(olfacto.run(cfg).dataset.alignment[-1])
    assert "per-breath SGD, whole olfacto.run: linear, bernoulli" in capsys.readouterr().out
