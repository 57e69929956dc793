"""Scoring two 2 GiB .npy files keeps the process's peak RSS under 400 MB: rows are read in
chunks through memory-mapped windows that are unmapped after each chunk.

The peak is ru_maxrss of the scoring process. Linux carries a process's ru_maxrss across exec
from the memory it had before exec — for a child of this (large) pytest process, the parent's
RSS at the fork — so the scoring process is started by a small launcher process, and its
ru_maxrss is its own. /proc's VmHWM (per address space) is checked as well."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

import logitdiv as ld

GIB = 1 << 30
CLASSES = 1024          # float64 rows of 8 KiB
ROWS = 2 * GIB // (CLASSES * 8)  # 262,144 rows: exactly 2 GiB of logits per file
BLOCK = 4096            # rows written per block (32 MiB)
LIMIT_MB = 400


def _write_npy(path, blocks):
    """Writes a (ROWS, CLASSES) float64 .npy block by block, never holding the whole array."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (ROWS, CLASSES)})
        for blk in blocks:
            blk.tofile(f)


CHILD = r"""
import json, resource, sys, time
import numpy as np
import logitdiv as ld
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
scores, summary = ld.score(sys.argv[1], sys.argv[2], metrics=("kl", "top1"))
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
with open("/proc/self/status") as f:
    hwm = int(f.read().split("VmHWM:")[1].split()[0])  # KiB
rows = [0, 1, 123457, summary.rows - 1]
print(json.dumps({"peak_kib": peak, "hwm_kib": hwm, "baseline_kib": before, "seconds": seconds, "rows": summary.rows,
                  "kl_rows": rows, "kl": [float(scores["kl"][r]) for r in rows],
                  "kl_mean": summary["kl"].mean, "top1": summary.top1_agreement}))
"""

# Runs CHILD in a grandchild, so that its ru_maxrss does not start from pytest's RSS (see above).
LAUNCHER = r"""
import subprocess, sys
r = subprocess.run([sys.executable, "-c", sys.argv[1]] + sys.argv[2:], capture_output=True, text=True, timeout=280)
sys.stdout.write(r.stdout)
sys.stderr.write(r.stderr)
sys.exit(r.returncode)
"""


def test_two_2gib_npy_files_score_in_bounded_memory(tmp_path):
    rng = np.random.default_rng(0)
    base_block = rng.standard_normal((BLOCK, CLASSES)) * 3
    noise = rng.standard_normal((BLOCK, CLASSES)) * 0.05
    cand_block = base_block + noise
    pa, pb = tmp_path / "base.npy", tmp_path / "cand.npy"
    try:
        t0 = time.perf_counter()
        # every block differs (a per-block shift, which softmax ignores but the file holds), yet is cheap to make
        _write_npy(pa, (base_block + 0.25 * i for i in range(ROWS // BLOCK)))
        _write_npy(pb, (cand_block + 0.25 * i for i in range(ROWS // BLOCK)))
        write_s = time.perf_counter() - t0
        assert pa.stat().st_size >= 2 * GIB and pb.stat().st_size >= 2 * GIB

        out = subprocess.run([sys.executable, "-c", LAUNCHER, CHILD, str(pa), str(pb)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        peak_mb = res["peak_kib"] * 1024 / 1e6
        hwm_mb = res["hwm_kib"] * 1024 / 1e6
        print(f"\n2 GiB × 2 .npy: peak RSS {peak_mb:.0f} MB (VmHWM {hwm_mb:.0f} MB; {res['baseline_kib'] * 1024 / 1e6:.0f} MB "
              f"after imports), scoring {res['seconds']:.1f} s, writing the files {write_s:.1f} s")
        assert res["rows"] == ROWS
        assert peak_mb < LIMIT_MB, f"peak RSS {peak_mb:.0f} MB ≥ {LIMIT_MB} MB"
        assert hwm_mb < LIMIT_MB, f"VmHWM {hwm_mb:.0f} MB ≥ {LIMIT_MB} MB"
        # the values streamed from the files are the library's on the same rows
        a = np.load(pa, mmap_mode="r")
        b = np.load(pb, mmap_mode="r")
        rows = res["kl_rows"]
        assert res["kl"] == ld.kl(np.asarray(a[rows]), np.asarray(b[rows])).tolist()
        del a, b
        assert 0 < res["kl_mean"] < 0.1 and res["top1"] > 0.9
    finally:  # 4 GiB must not linger among pytest's kept temporary directories
        pa.unlink(missing_ok=True)
        pb.unlink(missing_ok=True)
