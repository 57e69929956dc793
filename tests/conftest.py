"""Shared fixtures and helpers of the divergence tests."""

from __future__ import annotations

import os
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import logitdiv as ld

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "logitdiv",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # reproducible runs; CI can pick another profile with HYPOTHESIS_PROFILE
)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "logitdiv"))

KINDS = ("kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl")
SOFTMAX_KINDS = ("kl", "sym_kl", "js")
SIGMOID_KINDS = ("sigmoid_kl", "sigmoid_sym_kl")
REDUCTIONS = ("none", "sum", "mean", "batchmean")
BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16), BF16)


def fn(kind: str):
    """The public function of a divergence."""
    return getattr(ld, kind)


def call(kind: str, s, t, **kw):
    """Calls divergence `kind`; `weights` is dropped for the softmax family when None and `beta`
    is only passed to js."""
    kw = dict(kw)
    if kw.get("weights", 1) is None:
        del kw["weights"]
    if kind != "js":
        kw.pop("beta", None)
    return fn(kind)(s, t, **kw)


def value_dtype(dtype) -> np.dtype:
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def threads_restored():
    """Restores the default thread count after a test that changes it."""
    yield
    ld.set_num_threads(0)
