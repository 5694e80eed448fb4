"""The deeph-jax command line: help texts and inspect, run as a user would (a subprocess)."""

import subprocess
import sys

import pytest

from deeph_jax.cli import build_parser


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "deeph_jax.cli", *args], capture_output=True, text=True)


def test_top_level_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("inspect", "convert"):
        assert command in out.stdout
    assert "eV and Angstrom" in " ".join(out.stdout.split())


def subcommand_paths():
    parser = build_parser()
    paths = []

    def walk(p, prefix):
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, child in action.choices.items():
                    paths.append(prefix + [name])
                    walk(child, prefix + [name])

    walk(parser, [])
    return paths


@pytest.mark.parametrize("path", subcommand_paths(), ids=lambda p: " ".join(p))
def test_every_subcommand_has_help(path):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*path, "--help"])
    assert exit_.value.code == 0


def test_inspect_molecule_set(molecule_set_dir):
    out = run_cli("inspect", str(molecule_set_dir))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "structures   13" in text
    assert "C   [0, 0, 1, 1, 2]" in text and "H   [0, 0, 1]" in text and "O   [0, 0, 1, 1, 2]" in text
    assert "elements     C (26 atoms), H (54 atoms), O (10 atoms)" in text


def test_cli_error_is_one_line(tmp_path):
    out = run_cli("inspect", str(tmp_path / "nothing"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "not found" in out.stderr
