"""keep_scores=False: bounded memory for any number of rows. A child process streams R rows × 8
classes of float16 logits through `ld.Scorer(keep_scores=False)` batch by batch (the logits are
made batch by batch, never held whole), and its peak RSS (ru_maxrss of a grandchild: see
test_score_memory.py for why) stays under 200 MB; every reported quantile is within the
sketch's stated rank error of the exact one (recomputed here from the same rows).

The default case is 3·10^6 rows with a 10^5-row exact budget (the sketch takes over); set
LOGITDIV_TEST_BIG=1 for the 3·10^7-row case with the default budget (minutes on a small machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import logitdiv as ld

BIG = os.environ.get("LOGITDIV_TEST_BIG") == "1"
ROWS = 30_000_000 if BIG else 3_000_000
EXACT = None if BIG else 100_000
BATCH = 1 << 18
CLASSES = 8
LIMIT_MB = 200

MAKE = r"""
import numpy as np
def batches(rows, batch, classes):
    for i, lo in enumerate(range(0, rows, batch)):
        n = min(batch, rows - lo)
        rng = np.random.default_rng(1000 + i)
        a = (rng.standard_normal((n, classes)) * 3).astype(np.float16)
        b = (a.astype(np.float32) + 0.2 * rng.standard_normal((n, classes)).astype(np.float32)).astype(np.float16)
        yield a, b
"""

CHILD = MAKE + r"""
import json, resource, sys
import logitdiv as ld
rows, batch, classes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
kw = {} if sys.argv[4] == "default" else {"exact_rows": int(sys.argv[4])}
sc = ld.Scorer(keep_scores=False, **kw)
for a, b in batches(rows, batch, classes):
    sc.update(a, b)
s = sc.summary()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": peak, "summary": s.to_dict()}))
"""

LAUNCHER = r"""
import subprocess, sys
r = subprocess.run([sys.executable, "-c", sys.argv[1]] + sys.argv[2:], capture_output=True, text=True, timeout=3000)
sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); sys.exit(r.returncode)
"""


def test_bounded_memory_and_quantiles_within_rank_error():
    out = subprocess.run([sys.executable, "-c", LAUNCHER, CHILD, str(ROWS), str(BATCH), str(CLASSES),
                          "default" if EXACT is None else str(EXACT)], capture_output=True, text=True, timeout=3100)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    peak_mb = res["peak_kib"] * 1024 / 1e6
    s = res["summary"]
    print(f"\n{ROWS:,} rows × {CLASSES} float16, keep_scores=False: peak RSS {peak_mb:.0f} MB; "
          f"kl rank error bound {s['metrics']['kl']['quantile_rank_error']:.2e}")
    assert peak_mb < LIMIT_MB, f"peak RSS {peak_mb:.0f} MB ≥ {LIMIT_MB} MB"
    assert s["rows"] == ROWS and s["schema"] == "logitdiv.score/1.1" and s["quantile_method"] == "sketch"
    ns = {}
    exec(MAKE, ns)
    exact = {m: np.empty(ROWS, np.float32) for m in ("kl", "sym_kl", "js")}
    lo = 0
    for a, b in ns["batches"](ROWS, BATCH, CLASSES):
        for m in exact:
            exact[m][lo : lo + len(a)] = getattr(ld, m)(a, b)
        lo += len(a)
    for m, v in exact.items():
        ms = s["metrics"][m]
        assert ms["quantile_method"] == "sketch" and 0 < ms["quantile_rank_error"] < 0.01
        x = np.sort(v[np.isfinite(v)].astype(np.float64))
        n = x.size
        assert ms["count"] == n and ms["max"] == float(x[-1])
        eps = ms["quantile_rank_error"] * n
        for name, q in (("median", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99_9", 0.999)) + tuple(
                (k, {"p0_1": 0.001, "p1": 0.01, "p5": 0.05, "p10": 0.1, "p95": 0.95}[k]) for k in ("p0_1", "p1", "p5", "p10", "p95")):
            val = ms[name] if name in ms else ms["percentiles"][name]
            r = np.floor((n - 1) * q)
            lo_r, hi_r = np.searchsorted(x, val, "left"), np.searchsorted(x, val, "right")
            assert lo_r - eps <= r <= hi_r - 1 + eps, (m, name, val, lo_r, hi_r, r, eps)
