"""NeuroML HDF5 networks: written by nmlsim, read back, read by libNeuroML, bad files refused."""
import h5py
import pytest

from conftest import run_cli
from nmlsim.library import export


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    d = tmp_path_factory.mktemp("h5")
    export("coba_lif", d, size=200, seed=7, duration=0.08, to=("neuroml", "neuroml-h5"))
    return d


def test_hdf5_network_runs_identically_to_xml(both, tmp_path):
    for lems, out in (("LEMS_coba_lif.xml", "x"), ("LEMS_coba_lif_h5.xml", "h")):
        p = run_cli(["run", lems, "--outdir", tmp_path / out, "--sonata-spikes", "s.h5", "-q"], cwd=both)
        assert p.returncode == 0, p.stderr
    assert (tmp_path / "x" / "s.h5").read_bytes() == (tmp_path / "h" / "s.h5").read_bytes()
    with h5py.File(tmp_path / "x" / "s.h5") as f:
        assert len(f["spikes/E/node_ids"]) > 0
    assert (both / "coba_lif.net.h5").stat().st_size < (both / "coba_lif.net.nml").stat().st_size / 4
    p = run_cli(["validate", both / "LEMS_coba_lif_h5.xml"])
    assert p.returncode == 0, p.stdout + p.stderr


def test_libneuroml_reads_the_hdf5_network(both):
    pytest.importorskip("tables")
    from neuroml.loaders import NeuroMLHdf5Loader
    doc = NeuroMLHdf5Loader.load(str(both / "coba_lif.net.h5"))
    net = doc.networks[0]
    assert {p.id: p.size for p in net.populations} == {"E": 160, "I": 40}
    with h5py.File(both / "coba_lif.net.h5") as f:
        n = len(f["neuroml/network/projection_proj_EE/proj_EE"])
    proj = next(p for p in net.projections if p.id == "proj_EE")
    assert len(proj.connection_wds) + len(proj.connections) == n > 0


@pytest.mark.parametrize("what,needle", [("not_h5", "cannot open as HDF5"),
                                         ("no_column_name", "no name for column"),
                                         ("id_out_of_range", "out of range")])
def test_bad_hdf5_network(both, tmp_path, what, needle):
    import shutil
    for f in ("LEMS_coba_lif_h5.xml", "coba_lif.cells.nml", "coba_lif.net.h5"):
        shutil.copy(both / f, tmp_path / f)
    h5 = tmp_path / "coba_lif.net.h5"
    if what == "not_h5":
        h5.write_text("not hdf5")
    else:
        with h5py.File(h5, "a") as f:
            d = f["neuroml/network/projection_proj_EE/proj_EE"]
            if what == "no_column_name":
                del d.attrs["column_1"]
            else:
                a = d[()]
                a[0, 2] = 10_000
                d[...] = a
    p = run_cli(["run", "LEMS_coba_lif_h5.xml", "-q"], cwd=tmp_path)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr and needle in lines[0], p.stderr
    assert "coba_lif.net.h5" in lines[0] or "proj_EE" in lines[0]


def test_convert_to_neuroml_h5_matches_xml(tmp_path):
    """SONATA (NEST cells, virtual inputs) -> NeuroML with the network in HDF5 -> nmlsim: the
    spikes of the XML conversion."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_sonata_point import make_circuit
    cfg = make_circuit(tmp_path / "son")
    for to in ("neuroml", "neuroml-h5"):
        p = run_cli(["convert", cfg, tmp_path / to, "--to", to])
        assert p.returncode == 0, p.stderr
        p = run_cli(["run", "LEMS_sonata_network.xml", "--method", "euler", "-q"], cwd=tmp_path / to)
        assert p.returncode == 0, p.stderr
    assert (tmp_path / "neuroml-h5" / "sonata_network.net.h5").exists()
    a = (tmp_path / "neuroml" / "results" / "net_11.spikes").read_text()
    assert a and a == (tmp_path / "neuroml-h5" / "results" / "net_11.spikes").read_text()
