"""Bilayer graphene sampling (issue 19): random stacking and interlayer distance, twisted test cells, CLI, metadata."""

import json
import math

import numpy as np
import pytest

from deeph_jax.builders.twisted_bilayer import CELL_HEIGHT, GRAPHENE_A, twisted_bilayer
from deeph_jax.dft import commands
from deeph_jax.dft.bilayers import BilayerSource, interlayer_range
from deeph_jax.dft.crystals import NAMED
from deeph_jax.errors import DeephError

BOND = GRAPHENE_A / math.sqrt(3)  # Angstrom, C-C in the ideal sheet


def _distances(structure, mask_a, mask_b):
    """All distances between atoms of mask_a and mask_b over in-plane periodic images (self pairs dropped), A."""
    pos, cell = structure.positions, structure.cell
    out = []
    for i in (-1, 0, 1):
        for j in (-1, 0, 1):
            d = pos[mask_a][:, None, :] - (pos[mask_b] + i * cell[0] + j * cell[1])[None, :, :]
            out.append(np.linalg.norm(d, axis=-1))
    r = np.concatenate(out, axis=1)
    return np.where(r < 1e-8, np.inf, r)


def _bottom(structure):
    return structure.positions[:, 2] < structure.cell[2, 2] / 2


def test_uses_the_project_graphene_lattice_and_cell_height():
    assert GRAPHENE_A == NAMED["graphene"]["a"]
    src = BilayerSource()
    assert src.vacuum == CELL_HEIGHT == 15.0 and tuple(src.interlayer) == (3.2, 3.7)


@pytest.mark.parametrize("reps, atoms", [((2, 2, 1), 16), ((3, 3, 1), 36)])
def test_ideal_stacking_two_graphene_sheets(reps, atoms):
    """Without rattle or strain: two flat sheets d apart, each intact graphene, top = bottom moved by the shift."""
    src = BilayerSource(supercell=reps, rattle=0.0)
    for i in range(6):
        s, rec = src.geometry(3, i), src.sample(3, i)
        assert s.n_atoms == atoms and rec["layer_sizes"] == [atoms // 2, atoms // 2]
        bottom = _bottom(s)
        assert np.array_equal(bottom, np.arange(atoms) < atoms // 2)  # POSCAR order: bottom layer first
        d = rec["interlayer_distance_A"]
        assert 3.2 <= d <= 3.7
        np.testing.assert_allclose(s.positions[~bottom, 2] - s.positions[bottom, 2], d, atol=1e-12)
        np.testing.assert_allclose(s.positions[:, 2].mean(), CELL_HEIGHT / 2, atol=1e-12)
        for layer in (bottom, ~bottom):  # three neighbours at the C-C bond, the next ones at a
            r = np.sort(_distances(s, layer, layer), axis=1)
            np.testing.assert_allclose(r[:, :3], BOND, atol=1e-9)
            assert r[:, 3].min() > GRAPHENE_A - 1e-9
        # The top layer is the bottom one moved by the recorded shift, modulo the supercell.
        shift = np.asarray(rec["stacking_shift_frac"])
        assert np.all((0 <= shift) & (shift < 1))
        np.testing.assert_allclose(rec["stacking_shift_A"], shift @ src.base().cell[:2, :2], atol=1e-10)
        moved = s.positions[bottom, :2] + np.asarray(rec["stacking_shift_A"])
        diff = (moved[:, None, :] - s.positions[None, ~bottom, :2]) @ np.linalg.inv(s.cell[:2, :2])
        assert np.all(np.abs(diff - np.round(diff)).max(axis=-1).min(axis=1) < 1e-9)
        assert _distances(s, bottom, ~bottom).min() >= d - 1e-9  # no interlayer pair closer than d


def test_stackings_cover_the_cell():
    """Uniform over the primitive cell: AA, AB and SP are all approached, and the mean sits in the middle."""
    src = BilayerSource(supercell=(2, 2, 1), rattle=0.0)
    records = [src.sample(0, i) for i in range(300)]
    shifts = np.array([r["stacking_shift_frac"] for r in records])
    d = np.array([r["interlayer_distance_A"] for r in records])
    assert np.abs(shifts.mean(axis=0) - 0.5).max() < 0.06
    assert d.min() < 3.25 and d.max() > 3.65 and np.all((3.2 <= d) & (d <= 3.7))
    for target in ((0, 0), (1 / 3, 1 / 3), (2 / 3, 2 / 3), (1 / 6, 1 / 6)):  # AA, AB, BA, SP
        delta = shifts - np.asarray(target)
        delta -= np.round(delta)
        assert np.linalg.norm(delta, axis=1).min() < 0.08, target


def test_varied_bilayer_is_reproducible_rattled_and_strained():
    src = BilayerSource(supercell=(2, 2, 1), rattle=0.0, rattle_max=0.15, strain=0.02, pristine=1)
    ideal = BilayerSource(supercell=(2, 2, 1), rattle=0.0)
    for i in range(8):
        a, b = src.geometry(0, i), src.geometry(0, i)
        np.testing.assert_array_equal(a.positions, b.positions)  # deterministic per (seed, index)
        assert not np.allclose(a.positions, src.geometry(1, i).positions)  # the seed matters
        rec = src.sample(0, i)
        assert rec["stacking_shift_frac"] == ideal.sample(0, i)["stacking_shift_frac"]  # drawn first, same stream
        strain = np.asarray(rec["strain"])
        assert np.abs(strain).max() <= 0.02 and np.abs(strain[2]).max() == 0 and np.abs(strain[:, 2]).max() == 0
        np.testing.assert_allclose(a.cell[2], [0, 0, CELL_HEIGHT])  # the cell height is kept
        unrattled = ideal.geometry(0, i).positions @ (np.eye(3) + strain)
        disp = a.positions - unrattled
        if i == 0:
            assert rec["rattle_sigma_A"] == 0.0 and np.abs(disp).max() < 1e-10
        else:
            assert 0 <= rec["rattle_sigma_A"] <= 0.15 and np.abs(disp).max() < 6 * rec["rattle_sigma_A"] + 1e-12
        everything = np.ones(a.n_atoms, bool)
        assert _distances(a, everything, everything).min() > 0.9  # no collapsed pairs


@pytest.mark.parametrize("m, atoms, degrees", [(1, 28, 21.787), (2, 76, 13.174)])
def test_twisted_test_cells(m, atoms, degrees):
    src = BilayerSource(name="twisted-bilayer", twist_m=m, supercell=(1, 1, 1), interlayer=(3.35, 3.35), rattle=0.0)
    s, rec = src.geometry(1000 + m, 0), src.sample(1000 + m, 0)
    ref = twisted_bilayer(m, interlayer=3.35, height=CELL_HEIGHT)
    np.testing.assert_array_equal(s.positions, ref.positions)
    np.testing.assert_array_equal(s.cell, ref.cell)
    assert s.n_atoms == atoms and rec["layer_sizes"] == [atoms // 2] * 2
    assert rec["twist_m"] == m and abs(rec["twist_angle_deg"] - degrees) < 1e-3
    assert rec["interlayer_distance_A"] == 3.35 and "stacking_shift_frac" not in rec
    assert src.ideal().n_atoms == atoms


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="twisted-bilayer", supercell=(1, 1, 1)), "needs --twist-m"),
    (dict(name="twisted-bilayer", twist_m=1), "supercell must be 1,1,1"),
    (dict(twist_m=1), "--twist-m is for"),
    (dict(interlayer=(3.7, 3.2)), "low <= high"),
    (dict(vacuum=10.0), "of vacuum"),
    (dict(supercell=(2, 2, 2)), "1 along the vacuum"),
    (dict(name="hbn"), "unknown bilayer"),
])
def test_bad_bilayer_settings(kwargs, match):
    with pytest.raises(DeephError, match=match):
        BilayerSource(**kwargs)


# -- command line -------------------------------------------------------------------------------
@pytest.fixture
def captured(monkeypatch):
    """Run `generate crystal` up to the generator call and keep what it was given (no DFT)."""
    import deeph_jax.dft.crystals as crystals

    got = {}

    def fake(out, n, seed, source, settings, **kwargs):
        got.update(out=out, n=n, seed=seed, source=source, settings=settings)
        return {"seconds": [], "written": 0, "skipped_existing": 0, "not_converged": []}

    monkeypatch.setattr(crystals, "generate_crystals", fake)
    return got


def _main(*argv):
    return commands.main(["generate", "crystal", *argv, "--out", "unused", "--no-progress"])


def test_cli_bilayer_defaults(captured):
    assert _main("--name", "bilayer-graphene", "--supercell", "3,3,1", "--rattle", "0", "--rattle-max", "0.15",
                 "--strain", "0.02", "--pristine", "1", "--n", "20", "--seed", "1") == 0
    src, settings = captured["source"], captured["settings"]
    assert isinstance(src, BilayerSource) and src.name == "bilayer-graphene"
    assert src.supercell == (3, 3, 1) and tuple(src.interlayer) == (3.2, 3.7) and src.twist_m is None
    assert src.vacuum == 15.0 and src.rattle_max == 0.15 and src.strain == 0.02 and src.pristine == 1
    assert settings.smearing_eV == 0.1 and settings.cutoff == 10.0 and settings.kmesh is None  # graphene's
    assert captured["n"] == 20 and captured["seed"] == 1


def test_cli_twisted_and_interlayer(captured):
    assert _main("--name", "twisted-bilayer", "--twist-m", "2", "--n", "1", "--seed", "1001") == 0
    src = captured["source"]
    assert src.twisted and src.twist_m == 2 and src.supercell == (1, 1, 1) and src.rattle == 0.0
    assert tuple(src.interlayer) == (3.35, 3.35) and captured["settings"].smearing_eV == 0.1
    assert _main("--name", "bilayer-graphene", "--interlayer", "3.4", "--smearing", "0.05", "--n", "1") == 0
    assert tuple(captured["source"].interlayer) == (3.4, 3.4) and captured["settings"].smearing_eV == 0.05
    assert captured["source"].supercell == (2, 2, 1) and captured["source"].rattle == 0.1
    assert interlayer_range("3.2,3.7") == (3.2, 3.7)


def test_cli_other_crystals_unchanged(captured):
    assert _main("--name", "hbn", "--n", "1") == 0
    src = captured["source"]
    assert type(src).__name__ == "CrystalSource" and src.supercell == (2, 2, 1) and src.vacuum == 12.0
    assert src.rattle == 0.1 and captured["settings"].smearing_eV is None


@pytest.mark.parametrize("argv, words", [
    (["--name", "hbn", "--twist-m", "1"], "--twist-m and --interlayer are for"),
    (["--name", "graphene", "--interlayer", "3.3"], "--twist-m and --interlayer are for"),
    (["--name", "twisted-bilayer"], "needs --twist-m"),
    (["--name", "twisted-bilayer", "--twist-m", "1", "--supercell", "2,2,1"], "must be 1,1,1"),
    (["--name", "zgnr", "--width", "2", "--twist-m", "1"], "--twist-m and --interlayer are for"),
])
def test_cli_refuses_in_one_line(captured, capsys, argv, words):
    assert _main(*argv, "--n", "1") == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and words in err[0], err
    assert not captured


def test_cli_bad_interlayer_text(capsys):
    with pytest.raises(SystemExit) as exc:
        _main("--name", "bilayer-graphene", "--interlayer", "3.2,x", "--n", "1")
    assert exc.value.code == 2 and "3.2,x" in capsys.readouterr().err


# -- metadata.json ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, meshes, atoms", [
    (["--name", "bilayer-graphene", "--supercell", "2,2,1", "--rattle", "0", "--rattle-max", "0.15", "--strain",
      "0.02", "--pristine", "1"], ([3, 3, 1], [5, 5, 1]), 16),
    (["--name", "twisted-bilayer", "--twist-m", "1"], ([2, 2, 1], [4, 4, 1]), 28),
])
def test_metadata_records_the_distribution(tmp_path, argv, meshes, atoms):
    pytest.importorskip("pyscf")  # the basis check reads PySCF's basis library; no SCF runs (--n 0)
    out = tmp_path / "set"
    assert commands.main(["generate", "crystal", *argv, "--n", "0", "--out", str(out), "--no-progress"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["cell_height_c_A"] == 15.0 and meta["vacuum_A"] == 15.0 and meta["cutoff_A"] == 10.0
    assert meta["smearing"] == {"method": "fermi-dirac", "width_eV": 0.1}
    assert (meta["scf_kmesh"], meta["dense_kmesh"]) == meshes and meta["vacuum_directions"] == [False, False, True]
    sampling = meta["sampling"]
    assert sampling["atoms"] == atoms and sampling["graphene_a_A"] == GRAPHENE_A
    if atoms == 16:
        assert sampling["bilayer"] == "bilayer-graphene" and sampling["interlayer_distance_A"] == [3.2, 3.7]
        assert "uniform in [0, 1)^2" in sampling["stacking"] and sampling["pristine"] == 1
        assert sampling["strain_max"] == 0.02 and sampling["rattle_sigma_A"] == [0.0, 0.15]
    else:
        assert sampling["twist_m"] == 1 and abs(sampling["twist_angle_deg"] - 21.787) < 1e-3
        assert sampling["interlayer_distance_A"] == [3.35, 3.35] and sampling["rattle_sigma_A"] == 0.0
