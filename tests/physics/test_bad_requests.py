"""Bad requests to ``bands``, ``dos`` and ``polarization``: one stderr line, exit 2, nothing written.

Every case runs through the command line (``deeph_jax.cli.main``) on a copy of a shipped 8-atom
hBN cell (32 orbitals, 32 electrons); each is refused before any eigensolve.
"""

import json
import shutil
from pathlib import Path

import pytest

from deeph_jax.cli import main

HBN = Path(__file__).resolve().parents[2] / "datasets" / "hbn-szv" / "train-2x2" / "00000"


@pytest.fixture
def hbn(tmp_path) -> Path:
    folder = tmp_path / "hbn"
    shutil.copytree(HBN, folder)
    return folder


CASES = {
    # name: (arguments after the folder, a piece of the expected message)
    "dos kmesh zero": (["dos", "{dir}", "--kmesh", "0", "0", "0"], "--kmesh needs three integers >= 1"),
    "dos kmesh negative": (["dos", "{dir}", "--kmesh", "-1", "2", "1"], "got -1 2 1"),
    "dos kmesh huge": (["dos", "{dir}", "--kmesh", "1000", "1000", "10"], "10,000,000 k-points"),
    "dos sigma zero": (["dos", "{dir}", "--kmesh", "2", "2", "1", "--sigma", "0"], "--sigma must be a positive energy"),
    "dos sigma nan": (["dos", "{dir}", "--kmesh", "1", "1", "1", "--sigma", "nan"], "got nan"),
    "dos sigma tiny": (["dos", "{dir}", "--kmesh", "1", "1", "1", "--sigma", "1e-9"], "grid points"),
    "dos output suffix": (["dos", "{dir}", "--kmesh", "1", "1", "1", "--out", "{dir}/dos.txt"], "must end in .npz or .h5"),
    "dos missing folder": (["dos", "{dir}/nope", "--kmesh", "1", "1", "1"], "structure folder not found"),
    "bands nbands over orbitals": (["bands", "{dir}", "--nbands", "100", "--sigma", "0"],
                                   "--nbands 100 but H(k) has 32 orbitals"),
    "bands nbands zero": (["bands", "{dir}", "--nbands", "0", "--sigma", "0"], "--nbands must be at least 1"),
    "bands sigma without nbands": (["bands", "{dir}", "--sigma", "-3"], "needs --nbands"),
    "bands sigma inf": (["bands", "{dir}", "--nbands", "4", "--sigma", "inf"], "--sigma must be a finite energy"),
    "bands npoints": (["bands", "{dir}", "--npoints", "1"], "--npoints must be at least 2"),
    "bands smearing": (["bands", "{dir}", "--smearing", "0"], "--smearing must be a positive energy"),
    "bands missing kpath": (["bands", "{dir}", "--kpath", "{dir}/K_PATH_missing"], "k-path file not found"),
    "bands missing folder": (["bands", "{dir}/nope"], "structure folder not found"),
    "bands overwrite input": (["bands", "{dir}", "--out", "{dir}/hamiltonian.h5"], "would overwrite an input file"),
    "bands no prediction": (["bands", "{dir}", "--hamiltonian", "pred"], "no hamiltonian_pred.h5"),
    "polarization kmesh": (["polarization", "{dir}", "--kmesh", "0", "1", "1"], "--kmesh needs three integers >= 1"),
    "polarization valence": (["polarization", "{dir}", "--valence", "B3"], "--valence must look like"),
    "polarization missing folder": (["polarization", "{dir}/nope"], "structure folder not found"),
}


def refused(argv, capsys) -> str:
    """Run the command; it must exit 2 with one stderr line and no traceback. -> that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_request_is_one_line_and_writes_nothing(case, hbn, capsys):
    argv, expected = CASES[case]
    before = sorted(p.name for p in hbn.iterdir())
    line = refused([a.format(dir=hbn) for a in argv], capsys)
    assert line.startswith(f"deeph-jax {argv[0]}: error: ") and expected in line, line
    assert sorted(p.name for p in hbn.iterdir()) == before


def test_kpath_off_the_sheet_plane_names_the_segment(hbn, capsys):
    (hbn / "K_PATH").write_text("3 0 0 0 0.5 0 0 GAMMA M\n3 0.5 0 0 0.5 0 0.5 M L\n")
    line = refused(["bands", str(hbn), "--kpath", str(hbn / "K_PATH")], capsys)
    assert line.endswith("K_PATH: segment 2 (M-L) has k along b3, a non-periodic direction (no stored block has R "
                         "there): keep those k components zero")
    assert not (hbn / "bands.npz").exists()


def test_occupation_that_overfills_the_bands_names_info_json(hbn, capsys):
    info = json.loads((hbn / "info.json").read_text())
    (hbn / "info.json").write_text(json.dumps({**info, "occupation": 100}))
    for command in (["bands", str(hbn)], ["dos", str(hbn), "--kmesh", "1", "1", "1"]):
        line = refused(command, capsys)
        assert f"{hbn / 'info.json'}: occupation 100 electrons does not fit in 32 orbitals (at most 64)" in line
    assert not (hbn / "bands.npz").exists() and not (hbn / "dos.npz").exists()
