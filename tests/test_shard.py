"""One network split across devices (issue 11, part 3): the sharded run equals the unsharded one, and the
compiled breathing program all-gathers only presynaptic activity, never an N × K_max array. Runs in a
subprocess with 8 simulated CPU devices (XLA_FLAGS must be set before JAX starts)."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = textwrap.dedent('''
    import json, re, sys
    import jax, numpy as np
    from olfacto import config
    from olfacto.engine import loop as simulate
    from olfacto.engine import programs
    from olfacto.model.network import spec_of
    assert jax.device_count() == 8
    out = {}
    rewire = {"rewiring.rule": "hebbian", "rewiring.every": 100, "rewiring.fraction": 0.25}
    for label, plasticity, extra in (("per_breath", "per_breath", {}), ("auto", "auto", {}), ("dense", "dense", {}),
                                     ("rewiring", "auto", rewire), ("rewiring-relu", "auto",
                                                                    {**rewire, "circuit.activation": "relu"})):
        base = {"circuit.n_cortex": 64, "circuit.n_glomeruli": 8, "circuit.connection_prob": 0.25,
                "run.n_breaths": 200, "run.record_every": 100, "run.n_probe": 16, "run.progress": False,
                "run.plasticity": plasticity, "learning.lr": 0.02, **extra}
        plain = simulate.run_batch([config.from_dict(**base)]).dataset
        cfg = config.from_dict(**base, **{"circuit.shard": True})
        sharded = simulate.run_batch([cfg]).dataset
        diff = {n: float(np.nanmax(np.abs(sharded[n].values - plain[n].values))) for n in plain.data_vars
                if plain[n].dtype.kind == "f"}
        batch = simulate.build([cfg])
        text = programs.advance(batch.spec).lower(batch.world, batch.params, batch.state).compile().as_text()
        shapes = [tuple(int(d) for d in m.split(",") if d) for m in re.findall(r"all-gather[.0-9]* = \\w+\\[([0-9,]*)\\]", text)]
        out[label] = {"diff": diff, "gathers": shapes, "k_max": spec_of(cfg).projection.slots,
                           "sharding": str(batch.state.weights["L_to_R"].sharding.spec)}
    magnitude = simulate.build([config.from_dict(**{**base, **rewire, "rewiring.rule": "magnitude",
                                                    "circuit.shard": True})])
    text = programs.event(magnitude.spec, "rewiring").lower(magnitude.world, magnitude.params,
                                                            magnitude.state).compile().as_text()
    out["magnitude event"] = re.findall(r"all-gather[.0-9]* = (\\w+\\[[0-9,]*\\])", text)
    print(json.dumps(out))
''')


@pytest.mark.slow
def test_sharded_network_equals_unsharded_and_gathers_only_activity():
    env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=8 "
               "--xla_cpu_enable_concurrency_optimized_scheduler=false", OLFACTO_JAX_CACHE="off")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # a SET event of a sharded network is local to each device's rows: it all-gathers nothing (a scatter of the
    # regrown slots by (row, slot) pairs gathered its N × r_max pairs to every device)
    assert out.pop("magnitude event") == []
    for plasticity, r in out.items():
        assert r["sharding"] in ("P(None, 'neurons')", "PartitionSpec(None, 'neurons')"), plasticity  # rows split
        for name, d in r["diff"].items():  # same network, same numbers (float32 reassociation only)
            assert d <= 1e-4, (plasticity, name, d)
        assert r["gathers"], plasticity  # the presynaptic activity is all-gathered …
        n, k = 64, r["k_max"]
        for shape in r["gathers"]:  # … and never a mask- or weight-shaped N × K_max array
            assert not (n in shape and k in shape), (plasticity, shape, k)


def test_distributed_without_a_cluster_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OLFACTO_JAX_CACHE="off")
    for var in ("SLURM_JOB_ID", "JAX_COORDINATOR_ADDRESS", "OMPI_COMM_WORLD_SIZE"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "olfacto.cli", "run", str(ROOT / "experiments" / "default.yaml"),
                           "--distributed", "--quiet", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("olfacto: error: --distributed: jax.distributed")
    assert "Traceback" not in proc.stderr


SETTINGS = ["circuit.n_cortex=64", "circuit.n_glomeruli=8", "circuit.connection_prob=0.25", "run.n_breaths=200",
            "run.record_every=100", "run.n_probe=16", "learning.lr=0.02", "recurrence.connection_prob=0.1",
            "recurrence.strength=0.5"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_one_network_over_two_processes_equals_one_process(tmp_path):
    """``olfacto run --distributed``: two processes on this host (2 simulated devices each, gloo between them)
    split one network's rows over 4 devices; process 0 writes what one process computes alone (≤ 1e-4)."""
    import numpy as np
    import xarray as xr

    from olfacto import config

    from olfacto.engine import loop as simulate

    env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=2 "
               "--xla_cpu_enable_concurrency_optimized_scheduler=false", OLFACTO_JAX_CACHE="off")
    for var in ("SLURM_JOB_ID", "JAX_COORDINATOR_ADDRESS", "OMPI_COMM_WORLD_SIZE"):
        env.pop(var, None)
    port, out = _free_port(), tmp_path / "o"
    sets = [a for s in SETTINGS + ["circuit.shard=true"] for a in ("--set", s)]
    procs = [subprocess.Popen([sys.executable, "-m", "olfacto.cli", "run", str(ROOT / "experiments" / "default.yaml"),
                               *sets, "--quiet", "--no-plot", "--out", str(out), "--distributed",
                               "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in (0, 1)]
    try:
        outputs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-3000:]
    assert "result.nc" in outputs[0][0] and "result.nc" not in outputs[1][0]  # only process 0 reports and writes
    two = xr.load_dataset(out / "result.nc")
    one = simulate.run(config.load(ROOT / "experiments" / "default.yaml", SETTINGS), progress=False).dataset
    names = [n for n in one.data_vars if one[n].dtype.kind == "f"]
    assert "alignment_recurrent" in names
    for name in names:
        assert np.nanmax(np.abs(two[name].values - one[name].values)) <= 1e-4, name


def test_layout_options_need_distributed(tmp_path):
    from olfacto import cli

    code = cli.main(["run", str(ROOT / "experiments" / "default.yaml"), "--num-processes", "2", "--out",
                     str(tmp_path / "o")])
    assert code == 2
