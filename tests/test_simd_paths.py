"""Every available SIMD path gives the scalar path's results (to f32 rounding) on the kernels that
have a SIMD fast path: kl, sym_kl, js (float32/float16/bfloat16 rows), and the losses reusing them."""

import os
import subprocess
import sys

import numpy as np
import pytest

import logitdiv as ld
from logitdiv import _native

PATHS = _native.available_simd_paths()


@pytest.fixture
def restore_path():
    before = _native.simd_path()
    yield
    _native.set_simd_path(before)


def test_paths_are_reported():
    assert PATHS[0] == "scalar"
    assert _native.simd_path() in PATHS


def test_forcing_an_unknown_or_missing_path_is_a_value_error(restore_path):
    with pytest.raises(ValueError, match="LOGITDIV_SIMD"):
        _native.set_simd_path("sse9")
    for name in ("scalar", "avx2", "avx512", "neon"):
        if name not in PATHS:
            with pytest.raises(ValueError, match=name):
                _native.set_simd_path(name)
    _native.set_simd_path("scalar")
    assert _native.simd_path() == "scalar"
    _native.set_simd_path(None)
    assert _native.simd_path() == PATHS[-1]


def _env_run(value):
    env = dict(os.environ, LOGITDIV_SIMD=value)
    code = "import warnings; warnings.simplefilter('always'); from logitdiv import _native; print(_native.simd_path())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)


@pytest.mark.parametrize("name", PATHS)
def test_env_var_forces_the_path(name):
    assert _env_run(name).stdout.strip() == name


def test_invalid_env_var_warns_and_keeps_the_best_path():
    r = _env_run("bogus")
    assert r.stdout.strip() == PATHS[-1]
    assert "LOGITDIV_SIMD" in r.stderr and "RuntimeWarning" in r.stderr


def _rows(shape, scale, eps, dtype, seed):
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=scale, size=shape)
    t = s + eps * scale * rng.normal(size=shape)
    return s.astype(dtype), t.astype(dtype)


CASES = [((3, 17), 3.0, 0.5), ((5, 1000), 30.0, 1e-4), ((2, 5000), 10.0, 1e-6), ((4, 32000), 5.0, 0.3)]


def _on(path, fn):
    _native.set_simd_path(path)
    return fn()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", ["kl", "sym_kl", "js"])
@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_divergences_match_the_scalar_path(restore_path, dtype, case, name, temperature):
    shape, scale, eps = case
    s, t = _rows(shape, scale if dtype == "float32" else min(scale, 5.0), eps, dtype, 0)
    fn = getattr(ld, name)
    call = lambda: fn(s, t, temperature=temperature, grad=True)  # noqa: E731
    v0, gs0, gt0 = _on("scalar", call)
    for path in PATHS[1:]:
        v, gs, gt = _on(path, call)
        np.testing.assert_allclose(v, v0, rtol=2e-5, atol=0)
        for g, g0 in ((gs, gs0), (gt, gt0)):
            g, g0 = np.asarray(g, np.float64), np.asarray(g0, np.float64)
            scale_g = np.abs(g0).max(axis=-1, keepdims=True)
            assert np.all(np.abs(g - g0) <= 2e-5 * scale_g + 1e-3 * np.abs(g0) + 1e-30), path


def test_losses_reusing_the_divergences_match_the_scalar_path(restore_path):
    s, t = _rows((6, 3000), 4.0, 0.2, "float32", 1)
    y = np.arange(6) * 7
    calls = {
        "kd": lambda: ld.kd_loss(s, t, y, temperature=2.0, alpha=0.5, grad=True),
        "rdrop": lambda: ld.rdrop_loss(s, t, y, alpha=1.0, grad=True),
    }
    for name, call in calls.items():
        want = _on("scalar", call)
        for path in PATHS[1:]:
            got = _on(path, call)
            for a, b in zip(got, want):
                np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-4, atol=1e-9, err_msg=f"{name} {path}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["kl", "sym_kl", "js"])
def test_gradient_buffers_are_overwritten_whatever_they_held(restore_path, path, name):
    """The one-pass kernel keeps its exponentials in float32 gradient buffers while a short row's
    sweep runs: whatever the buffers held, and whichever kernel takes a row (declined ones: equal
    rows, ±inf, NaN, a far class, one dominant class), every entry is written, the same bits as
    into fresh buffers."""
    _native.set_simd_path(path)
    rng = np.random.default_rng(3)
    s = (rng.standard_normal((8, 100)) * 4).astype(np.float32)
    t = s + (0.3 * rng.standard_normal((8, 100))).astype(np.float32)
    t[1] = s[1]
    s[2, 37], s[3, 37], s[4, 37] = np.nan, np.inf, -np.inf
    t[5, 12] = s[5, 12] + 60
    s[6, 3] = 40.0
    t[6] = s[6] + 1e-3
    want = ld.__dict__[name](s, t, grad=True)
    for fill in (7.0, np.nan, -np.inf):
        bufs = (np.full_like(s, fill), np.full_like(s, fill))
        got = ld.__dict__[name](s, t, grad=True, grad_out=bufs)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
