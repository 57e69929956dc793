"""The sigmoid family on every SIMD path the CPU has, against the scalar path: values and
gradients, forced through LOGITDIV_SIMD in subprocesses (the core reads it on first kernel use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

PATHS = ["scalar", "avx2", "avx512", "neon"]

SCRIPT = r"""
import json, sys
import numpy as np
import logitdiv as ld

def flat(res):
    out = []
    for r in (res if isinstance(res, tuple) else (res,)):
        if isinstance(r, tuple):
            out.extend(flat(r))
        else:
            out.append(np.asarray(r, dtype=np.float64).ravel().tolist())
    return out

rng = np.random.default_rng(7)
cases = {}
s = (rng.standard_normal((6, 1037)) * 4).astype(np.float32)
t = (s + 1e-3 * rng.standard_normal(s.shape)).astype(np.float32)
far = (rng.standard_normal((3, 515)) * 60).astype(np.float32)
far[:, ::7] = -np.inf
far2 = far + (rng.standard_normal(far.shape) * 2).astype(np.float32)
far2[:, ::7] = -np.inf
w = rng.uniform(0, 2, s.shape[1])
bad = s.copy(); bad[1, 5] = np.nan; bad[2, 700] = np.inf
for name in ["sigmoid_sym_kl", "sigmoid_kl"]:
    f = getattr(ld, name)
    cases[name + "/near"] = flat(f(s, t, grad=True, reduction="sum"))
    cases[name + "/tau"] = flat(f(s, t * 3, temperature=2.5, grad=True))
    cases[name + "/far"] = flat(f(far, far2, grad=True))
    cases[name + "/weights"] = flat(f(s, t * 2, weights=w, grad=True, reduction="mean"))
    cases[name + "/bad"] = flat(f(bad, t, grad=True))
    cases[name + "/f16"] = flat(f(s.astype(np.float16), (t * 2).astype(np.float16), grad=True))
    cases[name + "/f64"] = flat(f(s.astype(np.float64), (t * 2).astype(np.float64), grad=True))
json.dump(cases, sys.stdout)
"""


def run(path: str):
    env = dict(os.environ, LOGITDIV_SIMD=path)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr
    return json.loads(proc.stdout), None


def available_paths():
    got = {}
    for p in PATHS:
        res, _ = run(p)
        if res is not None:
            got[p] = res
    return got


def test_every_path_matches_scalar():
    results = available_paths()
    assert "scalar" in results
    ref = results["scalar"]
    for path, res in results.items():
        assert res.keys() == ref.keys()
        for case, arrays in res.items():
            for got, want in zip(arrays, ref[case]):
                got, want = np.array(got), np.array(want)
                assert np.array_equal(np.isnan(got), np.isnan(want)), (path, case)
                ok = ~np.isnan(want)
                scale = np.abs(want[ok]).max(initial=0.0)
                rtol = 1e-12 if case.endswith("/f64") else (2e-3 if case.endswith("/f16") else 2e-5)
                np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=1e-6 * scale, err_msg=f"{path} {case}")
