"""The generated API reference (docs/API.md) matches the code's docstrings and signatures."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_api_reference_is_current():
    run = subprocess.run([sys.executable, str(ROOT / "docs/gen_api.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_versions_agree():
    import re

    import logitdiv

    cargo = (ROOT / "Cargo.toml").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)
    assert logitdiv.__version__ == version
    assert f"## {version}" in changelog
