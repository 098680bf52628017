"""Figures: `run --plot` (units from the model's dimensions, one raster of all event files, a
compact layout) and `plot` of result files (jnml traces and event files, SONATA spikes and reports)."""
import numpy as np
import pytest

import nmlsim
from conftest import run_cli
from nmlsim.library import export
from nmlsim.plot import files_figure, result_figure

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot")
    export("coba_lif", d, size=200, seed=3, duration=0.05, to=("neuroml", "sonata"))
    sim = nmlsim.load(d / "LEMS_coba_lif.xml")
    res = nmlsim.run(sim, outdir=d)
    p = run_cli(["run", d / "sonata" / "simulation_config.json", "-q"])
    assert p.returncode == 0, p.stderr
    return d, sim, res


def _lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_visible()]


def test_run_figure_units_and_layout(ran):
    d, sim, res = ran
    fig = result_figure(sim, res)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    # traces in mV (the LEMS dimension of v), one raster of both event files, their rates
    trace = next(ax for ax in axes if ax.get_title() == "coba_lif_v.dat")
    assert trace.get_ylabel() == "membrane potential (mV)" and trace.get_xlabel() == "time (ms)"
    v = np.concatenate([ln.get_ydata() for ln in _lines(trace)])
    assert -80 < v.min() and v.max() < -40  # mV, not V
    raster = next(ax for ax in axes if ax.get_title().startswith("spikes:"))
    assert [t.get_text() for t in raster.get_yticklabels()] == ["coba_lif_E", "coba_lif_I"]
    assert all(ln.get_linestyle() == "None" for ln in _lines(raster))  # markers, not lines
    assert any(ax.get_ylabel() == "rate (Hz)" for ax in axes)
    assert not any("/" in ax.get_title() for ax in axes)  # names, not paths
    w, h = fig.get_size_inches()
    assert h <= 2.3 * 5 + 0.4 and len(axes) <= 5


def test_plot_files_of_both_formats(ran, tmp_path):
    d, _, _ = ran
    fig = files_figure([d / "results" / "coba_lif_E.spikes", d / "results" / "coba_lif_v.dat",
                        d / "sonata" / "output" / "spikes.h5", d / "sonata" / "output" / "coba_lif_v_E.h5"])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("coba_lif_E.spikes: ") and titles[1] == "coba_lif_v.dat"
    assert titles[2].startswith("spikes.h5: E: ") and titles[3].startswith("spikes.h5: I: ")
    assert titles[4] == "coba_lif_v_E.h5: E"
    for k in (0, 2, 3):  # rasters: markers at (time, id)
        assert axes[k].get_ylabel() in ("cell id", "node id")
        assert all(ln.get_linestyle() == "None" for ln in _lines(axes[k]))
    assert axes[1].get_ylabel() == "value (SI units, as written)"
    assert axes[4].get_ylabel() == "membrane potential (mV)"
    assert all(ax.get_xlabel() == "time (ms)" for ax in axes)
    # through the command line
    p = run_cli(["plot", d / "results" / "coba_lif_E.spikes", "-o", tmp_path / "f.png"])
    assert p.returncode == 0 and (tmp_path / "f.png").stat().st_size > 1000, p.stderr


def test_plot_refuses_an_h5_that_holds_no_results(tmp_path):
    import h5py
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = [1]
    p = run_cli(["plot", tmp_path / "x.h5", "-o", tmp_path / "f.png"])
    assert p.returncode == 2 and "neither a SONATA spike file" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
