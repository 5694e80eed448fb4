"""A bundle records the cell height of its training sheets; predicting a cell of another height warns, since
periodic DFT's energy zero (the cell's mean electrostatic potential) moves with the vacuum."""

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deeph_jax.io import find_structure_dirs, read_deeph_dir
from deeph_jax.predict.bundle import training_metadata
from deeph_jax.predict.compat import vacuum_mismatch

REPO = Path(__file__).resolve().parents[2]
HBN = REPO / "datasets" / "hbn-szv"


def _taller(structure, height: float):
    cell = structure.cell.copy()
    cell[2] *= height / np.linalg.norm(cell[2])
    return replace(structure, cell=cell)


def test_training_metadata_records_the_sheets_cell_height_and_not_a_molecules_box():
    sheets = find_structure_dirs(HBN / "train-2x2")[:3] + find_structure_dirs(HBN / "train-3x3")[:2]
    assert training_metadata(sheets)["vacuum_heights_A"] == pytest.approx([12.0, 12.0])
    water = find_structure_dirs(REPO / "datasets" / "water-pbe-def2svp-test")[:2]
    assert "vacuum_heights_A" not in training_metadata(water)


def test_a_cell_of_another_height_is_named_and_the_training_height_is_not():
    sheet = read_deeph_dir(HBN / "large-4x4" / "00000", hamiltonian=None, overlap=False).structure
    meta = {"vacuum_heights_A": [12.0, 12.0]}
    assert vacuum_mismatch(meta, sheet) is None
    assert vacuum_mismatch(meta, _taller(sheet, 12.3)) is None  # within the tolerance
    message = vacuum_mismatch(meta, _taller(sheet, 20.0))
    assert "20.00 A high" in message and "training cells 12.00 A" in message
    assert vacuum_mismatch({}, _taller(sheet, 20.0)) is None  # a bundle that does not know says nothing
    assert vacuum_mismatch(meta, sheet.as_molecule()) is None


def test_the_shipped_hbn_model_warns_once_per_structure(caplog):
    from deeph_jax.predict.infer import load_predictor

    predictor = load_predictor(REPO / "models" / "hbn-szv")
    assert predictor.metadata["vacuum_heights_A"] == pytest.approx([12.0, 12.0])
    sheet = read_deeph_dir(HBN / "train-2x2" / "00000", hamiltonian=None, overlap=False).structure
    with caplog.at_level(logging.WARNING, logger="deeph_jax.predict.infer"):
        predictor.graph(sheet)
        assert not caplog.records
        predictor.graph(_taller(sheet, 15.0))
    assert len(caplog.records) == 1 and "15.00 A high" in caplog.records[0].getMessage()
