"""Bad input: one line naming key, value and what is allowed; exit status 2; no traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import olfacto
from olfacto import cli, config

DEFAULT = "experiments/default.yaml"

BAD = [
    (["--set", "circuit.n_cortex=0"], "circuit.n_cortex=0", "greater than or equal to 1"),
    (["--set", "circuit.connection_prob=0"], "circuit.connection_prob=0", "greater than 0"),
    (["--set", "circuit.connection_prob=1.5"], "circuit.connection_prob=1.5", "less than or equal to 1"),
    (["--set", "learning.lr=-0.1"], "learning.lr=-0.1", "greater than or equal to 0"),
    (["--set", "learning.rule=anti"], "learning.rule='anti'", "'hebbian', 'oja', 'covariance' or 'sgd'"),
    (["--set", "circuit.mask=ring"], "circuit.mask='ring'", "'bernoulli' or 'fixed_indegree'"),
    (["--set", "circuit.n_cortex=many"], "circuit.n_cortex='many'", "valid integer"),
    (["--set", "circuit.n_cortex=2.5"], "circuit.n_cortex=2.5", "valid integer"),
    (["--set", "learning.lr=.nan"], "learning.lr=nan", "finite number"),
    (["--set", "circuit.neurons=5"], "unknown key 'circuit.neurons'", "allowed keys here: n_glomeruli, n_cortex"),
    (["--set", "bogus=5"], "unknown key 'bogus'", "allowed keys here: seed, circuit"),
    (["--set", "run.n_breaths=1050"], "run.n_breaths=1050", "multiple of run.record_every=100 (the run learns in "
     "compiled chunks of run.record_every breaths, each ending with a record); e.g. run.n_breaths=1000 or 1100"),
    # a mistyped key: the nearest one (issue 23, item 12)
    (["--set", "circuit.n_cortx=5"], "unknown key 'circuit.n_cortx'", "did you mean 'circuit.n_cortex'? allowed keys here"),
    (["--set", "learning.n_cortex=5"], "unknown key 'learning.n_cortex'", "did you mean 'circuit.n_cortex'? allowed"),
    (["--set", "learning.learning_rate=0.1"], "unknown key 'learning.learning_rate'", "did you mean 'learning.lr'?"),
    (["--set", "circut.n_cortex=5"], "unknown key 'circut'", "did you mean 'circuit'? allowed keys here: seed"),
    (["--set", "odors.kind=dataset"], "odors.data_path=None", "needs the path"),
    (["--set", "learning.lr"], "--set 'learning.lr'", "expected KEY=VALUE"),
]


@pytest.mark.parametrize("extra,names,allowed", BAD, ids=[b[1] for b in BAD])
def test_bad_value_one_line_exit_2(extra, names, allowed, capsys, tmp_path):
    status = cli.main(["run", DEFAULT, *extra, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.count("\n") == 0, err
    assert err.startswith("olfacto: error: ")
    assert names in err and allowed in err
    assert not (tmp_path / "result.nc").exists()


def test_missing_and_malformed_files(capsys, tmp_path):
    assert cli.main(["run", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "config file" in err and "nope.yaml" in err and "not found" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("circuit:\n  n_cortex: [1, 2\n")
    assert cli.main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML at line 3" in err and err.count("\n") == 1
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    assert cli.main(["run", str(listing)]) == 2
    assert "top level must be a mapping" in capsys.readouterr().err


def test_real_process_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "olfacto.cli", "run", DEFAULT, "--set", "learning.rule=foo"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "olfacto: error: learning.rule='foo': input should be 'hebbian', 'oja', 'covariance' or 'sgd'"]


def test_overrides_are_typed_and_nested():
    cfg = config.load(DEFAULT, ["learning.lr=1e-3", "circuit.mask=fixed_indegree", "odors.nasal_cycle.amplitude=0.5"])
    assert cfg.learning.lr == pytest.approx(1e-3)
    assert cfg.circuit.mask == "fixed_indegree"
    assert cfg.odors.nasal_cycle.amplitude == 0.5
    # the resolved config round-trips through YAML
    assert config.validate(__import__("yaml").safe_load(cfg.to_yaml())) == cfg


def test_run_writes_dataset_with_provenance(tmp_path, capsys):
    out = tmp_path / "r"
    status = cli.main(["run", DEFAULT, "--out", str(out), "--quiet", "--set", "circuit.n_cortex=120",
                       "--set", "run.n_breaths=300", "--set", "run.n_probe=20"])
    assert status == 0
    ds = xr.open_dataset(out / "result.nc", engine="h5netcdf")
    for name in ["alignment", "alignment_L_to_R", "alignment_R_to_L", "tuning_alignment", "update_alignment",
                 "decoding_transfer", "laterality_decoding", "tuning_correlation"]:
        assert name in ds
    np.testing.assert_array_equal(ds.breath, [0, 100, 200, 300])
    np.testing.assert_allclose(ds.alignment, (ds.alignment_L_to_R + ds.alignment_R_to_L) / 2, rtol=1e-6)
    assert ds.tuning_correlation.shape == (2, 120)
    resolved = config.validate(__import__("yaml").safe_load(ds.attrs["config"]))
    assert resolved.circuit.n_cortex == 120 and resolved.run.n_breaths == 300
    assert ds.attrs["olfacto_version"] and ds.attrs["jax_version"] and "cpu" in ds.attrs["device"]
    assert (out / "learning_curve.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    for name in olfacto.model.measures.recorded():  # every measure printed, as stored
        assert f"{name:<22}{float(ds[name][-1]):.4f}" in printed, name
    ds.close()


def test_run_prints_theory_beside_simulation(tmp_path, capsys):
    """In the analysable case the printed prediction is the one the simulation reaches (stationary online
    Hebbian, N = 400, K = 40 fixed in-degree, ηλ = 0.01 after 3 relaxation times: within 0.03, the
    seed-to-seed spread at this N); outside it, the key that leaves the theory is named."""
    common = ["--quiet", "--no-plot", "--set", "circuit.n_cortex=400", "--set", "circuit.connection_prob=0.1",
              "--set", "circuit.mask=fixed_indegree", "--set", "run.n_probe=50", "--set", "learning.lr=0.01",
              "--set", "learning.decay=1.0",
              "--set", "run.n_breaths=300", "--set", "run.record_every=100"]
    assert cli.main(["run", DEFAULT, "--out", str(tmp_path / "a"), *common]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines() if line.strip()}
    simulated, predicted = map(float, rows["alignment"])
    assert abs(simulated - predicted) < 0.03, (simulated, predicted)
    assert cli.main(["run", DEFAULT, "--out", str(tmp_path / "b"), *common, "--set", "circuit.activation=relu"]) == 0
    assert "theory: none for this config (circuit.activation=relu" in capsys.readouterr().out


def test_divergence_stops_names_breath_and_keeps_records(tmp_path, capsys):
    out = tmp_path / "div"
    # SGD is stable only for η·‖y_pre‖² < 2; ‖y_pre‖² over K ≈ 25 inputs is ≈ 25, so η = 1 diverges
    status = cli.main(["run", DEFAULT, "--out", str(out), "--quiet", "--set", "learning.rule=sgd",
                       "--set", "learning.lr=1.0", "--set", "circuit.n_cortex=100", "--set", "circuit.connection_prob=0.25",
                       "--set", "run.n_breaths=1000", "--set", "run.n_probe=20"])
    err = capsys.readouterr().err
    assert status == 3
    assert "non-finite by breath 100" in err and "learning.lr=1.0" in err and "learning.rule=sgd" in err
    ds = xr.open_dataset(out / "result.nc", engine="h5netcdf")
    assert list(ds.breath.values) == [0]  # only the record before divergence
    assert "diverged" in ds.attrs
    ds.close()


def test_docs_key_table_is_the_generated_one():
    """The key table (docs/usage.md, "The config keys"; the README links to it) is generated from the config models
    (python -m olfacto.config.keys --update docs/usage.md): every key once, with its default and the value
    experiments/default.yaml gives it; the page names that command."""
    from pathlib import Path

    from olfacto.config import keys

    page = (Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text()
    inside = page.split(keys.START)[1].split(keys.END)[0].strip()
    assert inside == keys.table(), "key table is stale: run python -m olfacto.config.keys --update docs/usage.md"
    assert "python -m olfacto.config.keys --update docs/usage.md" in page
    listed = [line.split("|")[1].strip().strip("`") for line in inside.splitlines()[2:]]
    assert listed == config.leaf_keys() and listed[-1] == "sweep"  # the top-level sweep grid too
    ours = config.read_yaml(DEFAULT)
    row = {line.split("|")[1].strip().strip("`"): [c.strip() for c in line.split("|")[2:4]]
           for line in inside.splitlines()[2:]}
    assert row["learning.lr"][1 if ours["learning"]["lr"] != 0.01 else 0] == f"{ours['learning']['lr']:g}"
    assert row["run.progress"][0] == "true"


# -- paths in a config file are relative to the file (issue 23, item 4) ----------------------------------


def test_config_file_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "rel.yaml").write_text("odors:\n  kind: dataset\n  data_path: ../data/mosaic\n"
                                     "sweep:\n  odors.data_path: [../a, /abs/b]\n")
    (folder / "abs.yaml").write_text("odors:\n  data_path: /somewhere/else\n")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working folder plays no part in a file's paths
    data = config.read_yaml(folder / "rel.yaml")
    assert data["odors"]["data_path"] == str(tmp_path / "data" / "mosaic")
    assert data["sweep"]["odors.data_path"] == [str(tmp_path / "a"), "/abs/b"]
    assert config.load(folder / "abs.yaml").odors.data_path == "/somewhere/else"  # absolute: unchanged
    # --set values (and Python's from_dict) stay relative to the working folder
    cfg = config.load(folder / "rel.yaml", ["odors.data_path=mine"])
    assert cfg.odors.data_path == "mine"
    assert config.from_dict(**{"odors.data_path": "mine"}).odors.data_path == "mine"


def test_shipped_dataset_configs_load_from_any_folder(data_path, tmp_path, monkeypatch):
    """`olfacto run experiments/real_odors.yaml` from another folder: the shipped path names the data."""
    from conftest import ROOT
    from olfacto.recordings import glomeruli

    monkeypatch.chdir(tmp_path)
    for name in ("real_odors.yaml", "ch1_experiment_comparison.yaml"):
        cfg = config.load(ROOT / "experiments" / name)
        assert cfg.odors.data_path == str(data_path), name
        glomeruli.check_library(cfg)  # reads the measured odors


def test_sweep_fingerprint_ignores_where_the_data_path_is_read_from(tmp_path, monkeypatch):
    """A sweep over measured odors resumes from any working folder and after its data moved (the data enter
    its fingerprint by content); changed data are a changed sweep; a store made while the path's text was
    hashed (relative to the working folder) still resumes from that folder."""
    from test_adversarial import _mosaic

    from olfacto import sweeps
    from olfacto.sweeps import grid as g

    _mosaic(tmp_path / "data")
    (tmp_path / "cfg").mkdir()
    text = ("circuit: {n_cortex: 20, n_glomeruli: 5}\nodors: {kind: dataset, data_path: ../data, n_components: 2}\n"
            "run: {n_breaths: 10, record_every: 10, n_probe: 8}\n")
    (tmp_path / "cfg" / "s.yaml").write_text(text)
    grid = {"seed": [0, 1]}

    def made_in(folder):
        monkeypatch.chdir(folder)
        base = config.read_yaml(tmp_path / "cfg" / "s.yaml")
        return base, sweeps.fingerprint(base, grid)

    base, fp = made_in(tmp_path)
    assert made_in(tmp_path / "cfg")[1] == fp
    (tmp_path / "data").rename(tmp_path / "moved")
    moved = config.set_dotted(base, "odors.data_path", str(tmp_path / "moved"))
    assert sweeps.fingerprint(moved, grid) == fp
    _mosaic(tmp_path / "moved", matrix=-np.random.default_rng(1).uniform(0, 0.003, (12, 10)))
    assert sweeps.fingerprint(moved, grid) != fp
    # the store made before: the path hashed as text, relative to the folder the sweep ran from
    monkeypatch.chdir(tmp_path)
    old = g.fingerprint(config.set_dotted(moved, "odors.data_path", "moved"), grid, paths="text")
    assert old in sweeps.accepted_fingerprints(moved, grid)
    points = sweeps.expand(moved, grid)
    out = tmp_path / "out"
    sweeps.open_store(out, moved, grid, points)
    import zarr

    zarr.open_group(str(out / sweeps.STORE), mode="r+").attrs["sweep_fingerprint"] = old
    sweeps.open_store(out, moved, grid, points)  # resumes
    zarr.open_group(str(out / sweeps.STORE), mode="r+").attrs["sweep_fingerprint"] = "0" * 16
    with pytest.raises(config.ConfigError, match="holds a different sweep"):
        sweeps.open_store(out, moved, grid, points)


def test_unknown_key_without_a_near_one_names_only_the_allowed(capsys, tmp_path):
    assert cli.main(["run", DEFAULT, "--set", "learning.eta=0.1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("olfacto: error: unknown key 'learning.eta'; allowed keys here: rule, lr, "
                                               "decay, optimizer, momentum, batch, mean_rate, init_scale")


def test_an_integral_float_is_an_integer(tmp_path):
    """``n_cortex=5e2`` (YAML 1.2 reads a float) is 500; 2.5 is still refused (issue 23, item 12)."""
    cfg = config.load(DEFAULT, ["circuit.n_cortex=5e2", "run.n_breaths=4e3", "seed=1e1"])
    assert (cfg.circuit.n_cortex, cfg.run.n_breaths, cfg.seed) == (500, 4000, 10)
    assert type(cfg.circuit.n_cortex) is int and cfg == config.load(DEFAULT, ["circuit.n_cortex=500", "seed=10"])
    (tmp_path / "c.yaml").write_text("circuit:\n  n_cortex: 1.0e+3\nprotocol:\n  n_neurons: 2e1\n")
    assert config.load(tmp_path / "c.yaml").circuit.n_cortex == 1000
    assert config.from_dict(**{"protocol.n_neurons": np.float64(20.0)}).protocol.n_neurons == 20
    for bad in ("2.5", ".inf", "1e400"):
        with pytest.raises(config.ConfigError, match="circuit.n_cortex=.*valid integer"):
            config.load(DEFAULT, [f"circuit.n_cortex={bad}"])
    with pytest.raises(config.ConfigError, match="learning.batch=True"):  # a bool is no number, as before
        config.from_dict(**{"learning.batch": True})


def test_console_theory_line_says_it_is_the_theory_of_y_hat():
    """The theory column is the mean-field theory of ŷ; with recurrence the refined z_T rows have none, and the
    line says so (issue 23, item 11)."""
    from olfacto.cli.main import summary_table

    ds = xr.Dataset({name: ("breath", [0.0, 0.5]) for name in
                     ["alignment", "tuning_alignment", "update_alignment", "alignment_recurrent"]},
                    coords={"breath": [0, 4000]})
    what = "Hebbian stationary state at ηλ = 0.002, gain g = K/(Mλ) = 0.5 (fixed point A_H = 0.8114; tuning: at the fixed point)"
    recurrent = config.load(DEFAULT, ["recurrence.connection_prob=0.1"])
    assert summary_table(ds, recurrent).splitlines()[-1] == (
        f"theory: {what}; of ŷ, the indirect response through W; none for the recurrently refined z_T "
        "(the *_recurrent rows)")
    plain = summary_table(ds.drop_vars("alignment_recurrent"), config.load(DEFAULT))
    assert plain.splitlines()[-1] == f"theory: {what}; of ŷ, the indirect response through W"
    # item 12: the alignment is compared with the online theory, the tuning alignment with its fixed point
    rows = {line.split()[0]: line for line in plain.splitlines()[1:-1]}
    assert rows["tuning_alignment"].endswith("(at the fixed point, not online)")
    assert "fixed point" not in rows["alignment"]
