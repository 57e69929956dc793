"""Drives the C ABI tests (tests/c/test_capi.c: divergences and conventions; tests/c/test_capi_losses.c:
the losses): builds liblogitdiv with cargo, compiles each C program with the system compiler against
the checked-in header, runs it, and runs it again under valgrind memcheck, which must report 0 errors."""

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def library():
    """The debug build of liblogitdiv (built once for the module); its directory."""
    subprocess.run(["cargo", "build", "-q", "-p", "logitdiv-capi"], cwd=ROOT, check=True)
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"


@pytest.fixture(scope="module", params=["test_capi", "test_capi_losses"])
def c_test_binary(request, library, tmp_path_factory):
    return compile_c(ROOT / "tests/c" / f"{request.param}.c", library, tmp_path_factory.mktemp("capi"))


def compile_c(source, library, out_dir):
    """Compiles a C program against the checked-in header and links it to liblogitdiv."""
    exe = out_dir / source.stem
    cc = os.environ.get("CC", "cc")
    subprocess.run(
        [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
         str(source), "-I", str(ROOT / "rust/capi/include"),
         "-L", str(library), "-llogitdiv", f"-Wl,-rpath,{library}", "-lm", "-o", str(exe)],
        check=True,
    )
    return exe


def test_c_program_passes(c_test_binary):
    run = subprocess.run([str(c_test_binary)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 failed" in run.stdout


def test_c_program_is_clean_under_valgrind(c_test_binary):
    valgrind = shutil.which("valgrind")
    assert valgrind, "valgrind is needed for the memory check of the C ABI (apt-get install valgrind)"
    run = subprocess.run(
        [valgrind, "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
         "--errors-for-leak-kinds=definite", str(c_test_binary)],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "ERROR SUMMARY: 0 errors" in run.stderr


def test_readme_c_example_runs(library, tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## From C"):]
    code = section[section.index("```c\n") + 5:]
    code = code[:code.index("```")]
    source = tmp_path / "readme_demo.c"
    source.write_text(code, encoding="utf-8")
    run = subprocess.run([str(compile_c(source, library, tmp_path))], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "kd_loss" in run.stdout
