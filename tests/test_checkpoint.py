"""The learned network kept on disk (issue 23, item 7): ``Result.save`` / ``olfacto run --save-state`` and
``olfacto.load``.

Pinned: a loaded state is the saved one bit for bit (weights, rewired masks, recurrent A, the rewiring's
random stream), so the loaded Result answers every verb exactly as the original; a state never meets a
network other than its own (the world fingerprint); bad paths and damaged files are one-line errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import olfacto
from olfacto import cli
from olfacto.config import ConfigError
from olfacto.engine import checkpoint

from conftest import small

# the everyday case: the suite's common small shapes; the learned masks (rewiring) and A (recurrence) slow
LEARNED = dict(rewiring__rule="hebbian", rewiring__every=100, recurrence__connection_prob=0.1, run__n_breaths=300)
CASES = [pytest.param({}, id="weights"), pytest.param(LEARNED, id="masks-and-A", marks=pytest.mark.slow)]


def _saved(tmp_path, extra):
    result = olfacto.run(small(**extra))
    result.save(tmp_path / "run")
    return result, tmp_path / "run"


@pytest.mark.parametrize("extra", CASES)
def test_a_loaded_state_is_the_saved_one_and_answers_alike(tmp_path, extra):
    """Every leaf equal bit for bit (with rewiring and recurrence: masks moved by 2 events, A); the loaded
    Result's weights, mask, responses and measures on 12 fresh odors equal the original's exactly; the records
    come back too."""
    result, folder = _saved(tmp_path, extra)
    again = olfacto.load(folder)
    a, b = checkpoint.leaves(result.state), checkpoint.leaves(again.state)
    assert a.keys() == b.keys() and any("weights" in k for k in a)
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)
        assert b[name].dtype == a[name].dtype, name
    if extra:
        assert any("masks" in k for k in a) and any("recurrence" in k for k in a)
        assert int(np.asarray(again.state.parts["rewiring"].events)[0]) == 2  # the masks did move
    x = np.random.default_rng(0).normal(size=(12, 10))
    for d in ("L_to_R", "R_to_L"):
        np.testing.assert_array_equal(again.weights(d, dense=True), result.weights(d, dense=True))
        np.testing.assert_array_equal(again.mask(d, dense=True), result.mask(d, dense=True))
    np.testing.assert_array_equal(again.indirect(x)["L_to_R"], result.indirect(x)["L_to_R"])
    assert again.measures(x) == result.measures(x)
    np.testing.assert_array_equal(again.dataset.alignment.values, result.dataset.alignment.values)


def test_a_state_refuses_a_network_drawn_differently(tmp_path):
    """The world fingerprint: a state file whose network is not the one its config draws is refused in one line."""
    import xarray as xr

    _, folder = _saved(tmp_path, {})
    ds = xr.open_dataset(folder / "state.nc", engine="h5netcdf").load()
    ds.attrs["world_fingerprint"] = "0" * 64
    (tmp_path / "bad").mkdir()
    ds.to_netcdf(tmp_path / "bad" / "state.nc", engine="h5netcdf")
    with pytest.raises(ConfigError, match="differs from the one its state was learned on"):
        olfacto.load(tmp_path / "bad")


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"no saved state 'state.nc' there \(run with --save-state"):
        olfacto.load(tmp_path)
    (tmp_path / "state.nc").write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"not a readable state file"):
        olfacto.load(tmp_path / "state.nc")


@pytest.mark.slow
def test_cli_run_save_state_then_load(tmp_path, capsys):
    """`olfacto run --save-state` writes state.nc beside result.nc; loading it gives the run's final weights
    (the same as the Python API's run of the same config, to float32 rounding of the two programs)."""
    import yaml

    cfg = small()
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(cfg.to_yaml())))
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--save-state", "--no-plot", "--quiet"]) == 0
    assert "state.nc" in capsys.readouterr().out
    loaded = olfacto.load(tmp_path / "out")
    direct = olfacto.run(cfg)
    np.testing.assert_allclose(loaded.weights("L_to_R", dense=True), direct.weights("L_to_R", dense=True),
                               rtol=0, atol=1e-6)
    assert jax.tree.structure(loaded.state) == jax.tree.structure(direct.state)
