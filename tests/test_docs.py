"""The public functions carry their documentation (parameters, conventions) and its examples run."""

from __future__ import annotations

import doctest

import pytest

import logitdiv as ld
from conftest import KINDS


@pytest.mark.parametrize("kind", KINDS + ("gp_kl",))
def test_docstrings_are_present_and_their_examples_pass(kind):
    f = getattr(ld, kind)
    doc = f.__doc__
    assert doc, f"{kind} has no docstring"
    for needle in ("Parameters", "temperature", "reduction", "grad_out", "Conventions", "−inf", "Examples"):
        assert needle in doc, (kind, needle)
    tests = doctest.DocTestFinder().find(f, kind, globs={})
    assert tests and tests[0].examples
    runner = doctest.DocTestRunner()
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


def test_module_docstring_example():
    failures, tried = doctest.testmod(ld, verbose=False)
    assert tried > 0 and failures == 0
