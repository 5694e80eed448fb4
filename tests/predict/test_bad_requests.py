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


def test_list_models_with_a_damaged_bundle_is_one_line(predict_script, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.yaml").write_text("num_layers: 2\n")
    (tmp_path / "broken" / "metadata.json").write_text("{truncated")
    monkeypatch.setattr(predict_script, "MODELS", tmp_path)
    assert predict_script.main(["--list-models"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"predict.py: error: {tmp_path / 'broken' / 'metadata.json'}: not valid JSON")
