"""Smoke tests of the package surface: import, version, threads, the demo command."""

import subprocess
import sys

import numpy as np

import logitdiv as ld


def test_version_matches_cargo():
    import pathlib
    import re

    cargo = (pathlib.Path(__file__).parents[1] / "Cargo.toml").read_text()
    assert ld.__version__ == re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)


def test_threads_can_be_set_and_restored():
    ld.set_num_threads(1)
    assert ld.get_num_threads() == 1
    ld.set_num_threads(0)
    assert ld.get_num_threads() >= 1


def test_demo_prints_a_summary():
    out = subprocess.run([sys.executable, "-m", "logitdiv.scoring.cli", "demo"], capture_output=True, text=True, check=True).stdout
    assert "top-1 agreement" in out and "kl" in out


def test_kl_of_two_known_distributions():
    # KL([1/2, 1/2] ‖ [1/4, 3/4]) = ½ log 2 + ½ log(2/3)
    v = ld.kl(np.array([0.0, 0.0]), np.array([0.0, np.log(3.0)]))
    assert abs(float(v) - (0.5 * np.log(2.0) + 0.5 * np.log(2.0 / 3.0))) < 1e-15
