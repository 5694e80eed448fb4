"""predict.py refuses bad input with one stderr line and exit 2, before writing anything."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def predict_script():
    """predict.py loaded as a module, so its main() runs in this process (no jax start-up per case)."""
    spec = importlib.util.spec_from_file_location("predict_script", REPO / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refused(main, argv, capsys) -> str:
    """``main(argv)`` exits 2 with one stderr line and no traceback. -> that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_list_models_with_a_damaged_bundle_is_one_line(predict_script, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.yaml").write_text("num_layers: 2\n")
    (tmp_path / "broken" / "metadata.json").write_text("{truncated")
    monkeypatch.setattr(predict_script, "MODELS", tmp_path)
    line = refused(predict_script.main, ["--list-models"], capsys)
    assert line.startswith(f"predict.py: error: {tmp_path / 'broken' / 'metadata.json'}: not valid JSON")


@pytest.fixture(scope="module")
def tzvp_water(tmp_path_factory) -> Path:
    """A shipped def2-SVP water as ``a/`` and the same geometry in def2-TZVP (Hartree-Fock, ~2 s) as ``b/``."""
    import shutil

    from deeph_jax.dft.molecules import MoleculeSettings, compute_molecule
    from deeph_jax.io import read_deeph_dir, write_deeph_dir

    svp = REPO / "datasets" / "water-pbe-def2svp" / "00000"
    root = tmp_path_factory.mktemp("tzvp") / "dft"
    shutil.copytree(svp, root / "a")
    structure = read_deeph_dir(svp, hamiltonian=None, overlap=False).structure
    data, _ = compute_molecule(structure, MoleculeSettings(basis="def2-TZVP", xc="HF"))
    write_deeph_dir(root / "b", data)
    return root


def drop_basis_name(info_json: Path) -> None:
    """Remove info.json's ``basis`` (as data from other DeepH tools): only the shells can tell."""
    import json

    info = json.loads(info_json.read_text())
    info.pop("basis")
    info_json.write_text(json.dumps(info))


def test_dataset_in_another_basis_is_refused_before_writing(predict_script, tzvp_water, tmp_path, capsys):
    water_model = str(REPO / "models" / "water-pbe-def2svp")
    out = tmp_path / "pred"
    argv = ["--checkpoint", water_model, "--dataset", str(tzvp_water), "--out", str(out)]
    # The first structure (a/) fits; the second (b/) does not: nothing at all is written.
    line = refused(predict_script.main, argv, capsys)
    assert line == f"predict.py: error: {tzvp_water / 'b' / 'info.json'}: basis 'def2-TZVP' but the model was " \
                   f"trained on 'def2-SVP'"
    assert not out.exists()
    drop_basis_name(tzvp_water / "b" / "info.json")
    line = refused(predict_script.main, argv, capsys)
    assert line == f"predict.py: error: {tzvp_water / 'b' / 'info.json'}: element H has shells (l per shell) " \
                   f"[0, 0, 0, 1] but the model's basis has [0, 0, 1]"
    assert not out.exists()
    hbn_model = str(REPO / "models" / "hbn-szv")
    line = refused(predict_script.main, ["--checkpoint", hbn_model, *argv[2:]], capsys)
    assert line.endswith("a/info.json: element(s) H, O not in the model (trained on B, N)")
    assert not out.exists()


def test_basis_names_compare_as_pyscf_reads_them():
    from deeph_jax.predict.compat import same_basis_name

    assert same_basis_name("def2-SVP", "def2svp") and same_basis_name("gth-szv", "GTH_SZV")
    assert not same_basis_name("def2-SVP", "def2-TZVP")
