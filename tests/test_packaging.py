"""Packaging: the type stubs match the compiled module, and a wheel built here installs and runs
in a new virtual environment on a PATH without cargo (no compiler needed at install time)."""

import os
import pathlib
import subprocess
import sys
import venv

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_stubs_match_the_extension():
    run = subprocess.run([sys.executable, "-m", "mypy.stubtest", "logitdiv._native"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_package_is_typed():
    import logitdiv

    assert (pathlib.Path(logitdiv.__file__).parent / "py.typed").exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # zig (the ziglang package) links against glibc 2.17 symbols, which makes the wheel truly
    # manylinux2014 on any build machine; maturin finds it through the venv's python on PATH.
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(
        [sys.executable, "-m", "maturin", "build", "--release", "--quiet", "--zig",
         "--compatibility", "manylinux2014", "--out", str(out)],
        cwd=ROOT, check=True, env=env,
    )
    wheels = list(out.glob("logitdiv-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_is_abi3_manylinux(wheel):
    name = wheel.name
    assert "-cp39-abi3-" in name and "manylinux" in name, name


def test_wheel_installs_and_runs_without_cargo(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # a PATH with the venv and the system's basic tools only: no cargo, no rustc
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin"}
    env.pop("CARGO_HOME", None)
    env.pop("RUSTUP_HOME", None)
    assert subprocess.run(["bash", "-c", "command -v cargo"], env=env, capture_output=True).returncode != 0
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], env=env, check=True, cwd=tmp_path)
    smoke = "import numpy as np, logitdiv as ld; x = np.arange(6.0).reshape(2, 3); v = ld.sym_kl(x, x); assert v.shape == (2,) and (v == 0).all(); print(ld.__version__)"
    out = subprocess.run([str(py), "-c", smoke], env=env, capture_output=True, text=True, cwd=tmp_path, check=True)
    import logitdiv

    assert out.stdout.strip() == logitdiv.__version__
    demo = subprocess.run([str(env_dir / "bin" / "logitdiv"), "demo"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "top-1 agreement" in demo.stdout


def test_wheel_ships_the_cuda_kernels(wheel):
    """logitdiv.cuda compiles its kernels from the .cu/.cuh files beside it: the wheel carries them."""
    import zipfile

    from logitdiv._cuda import source

    names = set(zipfile.ZipFile(wheel).namelist())
    for f in source.FILES:
        assert f"logitdiv/_cuda/kernels/{f}" in names, f
