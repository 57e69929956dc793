"""Issue 17: nothing lost, nothing silently wrong at the edges — memory-mapped inputs, output
paths, malformed files, FIFOs, fork, big-endian arrays, huge options. Each test names the finding
it covers (the issue's numbering). Cases that would kill or hang the process before the fix run
in a child process under a deadline, so that they fail rather than take pytest down."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import logitdiv as ld
from logitdiv.scoring.cli import main
from logitdiv.scoring.readers import open_source

from _helpers import fork_and_run
from _score_ref import pair

OK_ERRORS = (TypeError, ValueError, OSError)


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter; a crash (SIGBUS) or a hang fails the test, not pytest."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child hung for {timeout} s")


@pytest.fixture
def ab(tmp_path):
    a, b = pair(rows=300, classes=16, seed=170)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return tmp_path, a, b


# ------------------------------------------------------------------------------------------------
# 1. a memmap is scored as the array it is, not as its file reopened by name


def test_memmap_is_scored_as_the_array_not_its_file(ab):
    d, a, b = ab
    mm = np.load(d / "a.npy", mmap_mode="c")
    mm[0] = b[0] + 3 * np.sin(np.arange(16))  # a private (copy-on-write) change the file does not see
    scores, _ = ld.score(mm, b, metrics="kl")
    assert np.array_equal(scores["kl"], ld.kl(np.asarray(mm), b))
    assert scores["kl"][0] != ld.kl(a[:1], b[:1])[0]
    # a read-only map whose file is replaced under its name still holds the old data
    ro = np.load(d / "a.npy", mmap_mode="r")
    np.save(d / "other.npy", b)
    os.replace(d / "other.npy", d / "a.npy")
    scores, _ = ld.score(ro[10:200], b[10:200], metrics="kl", chunk_rows=32)
    assert np.array_equal(scores["kl"], ld.kl(a[10:200], b[10:200]))
    # an r+ map written through the mapping: the values just written
    np.save(d / "c.npy", a)
    rw = np.load(d / "c.npy", mmap_mode="r+")
    rw[5] = 0.0
    scores, _ = ld.score(rw, b, metrics="kl", chunk_rows=7)
    assert np.array_equal(scores["kl"], ld.kl(np.asarray(rw), b))


# ------------------------------------------------------------------------------------------------
# 2. an output that is one of the inputs is refused before any work; outputs are renamed into place


@pytest.mark.parametrize("spelling", ["same", "dot", "hardlink", "symlink"])
def test_out_that_is_an_input_is_refused(ab, capsys, spelling, monkeypatch):
    d, a, b = ab
    monkeypatch.chdir(d)
    before = (d / "a.npy").read_bytes()
    out = {"same": str(d / "a.npy"), "dot": "./a.npy", "hardlink": str(d / "link.npy"), "symlink": str(d / "sym.npy")}[spelling]
    if spelling == "hardlink":
        os.link(d / "a.npy", d / "link.npy")
    if spelling == "symlink":
        os.symlink(d / "a.npy", d / "sym.npy")
    rc, out_text, err = run_cli(capsys, "score", "a.npy", d / "b.npy", "--out", out)
    assert rc == 1 and out_text == ""
    assert "is the same file as BASE" in err and err.count("\n") == 1
    assert (d / "a.npy").read_bytes() == before
    rc, _, err = run_cli(capsys, "score", d / "b.npy", "a.npy", "--plot", out.replace(".npy", ".png"), "--out", out)
    assert rc == 1 and "same file as CANDIDATE" in err


def test_outputs_are_written_at_their_exact_path_and_renamed_into_place(ab, capsys):
    d, a, b = ab
    (d / "s.NPY").write_bytes(b"old contents")
    rc, out, err = run_cli(capsys, "score", d / "a.npy", d / "b.npy", "--out", d / "s.NPY", "--metric", "kl")
    assert rc == 0, err
    assert not (d / "s.NPY.npy").exists()
    rec = np.load(d / "s.NPY")
    assert np.array_equal(rec["kl"], ld.kl(a, b))
    assert f"wrote per-row scores to {d / 's.NPY'}" in out
    assert sorted(p.name for p in d.iterdir()) == ["a.npy", "b.npy", "s.NPY"]  # no temporary file left
    # a failed write leaves the old file as it was, and no temporary file
    from logitdiv.scoring.writers import write_scores

    (d / "t.csv").write_text("old")
    with pytest.raises(ValueError):
        write_scores(str(d / "t.csv"), {"kl": np.array([1.0]), "js": np.array(["x"])})
    assert (d / "t.csv").read_text() == "old"
    assert sorted(p.name for p in d.iterdir()) == ["a.npy", "b.npy", "s.NPY", "t.csv"]


# ------------------------------------------------------------------------------------------------
# 3. a Fortran-order .npz member is streamed in bounded memory


def test_fortran_npz_member_is_read_in_bounded_memory(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4000, 250))  # 8 MB of float64
    np.savez_compressed(tmp_path / "f.npz", x=np.asfortranarray(a))
    np.savez(tmp_path / "f3.npz", x=np.asfortranarray(a.reshape(40, 100, 250)))
    for name in ("f.npz", "f3.npz"):
        with open_source(str(tmp_path / name)) as src:
            tracemalloc.start()
            try:
                got = []
                for chunk in src.chunks(200):  # 400 kB chunks
                    got.append(float(chunk.sum()))
                    assert chunk.shape[1] == 250
                    del chunk
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert peak < 3_000_000, f"{name}: peak {peak / 1e6:.1f} MB while reading an 8 MB member in 0.4 MB chunks"
        expect = [float(a[lo : lo + 200].sum()) for lo in range(0, 4000, 200)]
        assert got == expect
    scores, _ = ld.score(tmp_path / "f3.npz", a, metrics="kl", chunk_rows=333)
    assert np.array_equal(scores["kl"], ld.kl(a, a))


# ------------------------------------------------------------------------------------------------
# 4, 6. malformed files: ValueError naming the file and what is wrong


def _safetensors(path, header: dict, data: bytes = b"", raw_header: bytes | None = None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def _npy_with_header(path, header: str, data: bytes):
    h = header.encode("latin1")
    h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data)


def _bad_files(d):
    """(file name, substring the error must show) for every malformed input of the issue."""
    data = np.arange(8, dtype="<f4").tobytes()  # 32 bytes
    cases = {}

    def st(name, header, expect, data=data):
        _safetensors(d / name, header, data)
        cases[name] = expect

    st("neg.safetensors", {"x": {"dtype": "F32", "shape": [1, 4], "data_offsets": [-40, -24]}}, "outside the data section")
    st("past.safetensors", {"x": {"dtype": "F32", "shape": [2, 4], "data_offsets": [16, 48]}}, "outside the data section")
    st("mismatch.safetensors", {"x": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 32]}}, "needs 48 bytes")
    st("overlap.safetensors", {"x": {"dtype": "F32", "shape": [1, 4], "data_offsets": [0, 16]},
                               "y": {"dtype": "F32", "shape": [1, 4], "data_offsets": [8, 24]}}, "overlap")
    st("notobject.safetensors", {"x": [1, 2]}, "not an object")
    st("nooffsets.safetensors", {"x": {"dtype": "F32", "shape": [2, 4]}}, "data_offsets")
    st("three.safetensors", {"x": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 16, 32]}}, "two integers")
    st("float.safetensors", {"x": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0.0, 32.0]}}, "two integers")
    st("badshape.safetensors", {"x": {"dtype": "F32", "shape": [-2, -4], "data_offsets": [0, 32]}}, "shape")
    st("huge.safetensors", {"x": {"dtype": "F32", "shape": [2, 4], "data_offsets": [10**30, 10**30 + 32]}}, "outside")
    _safetensors(d / "list.safetensors", {}, data, raw_header=b"[1, 2, 3]")
    cases["list.safetensors"] = "not an object"
    # .npz whose member fails its CRC check
    np.savez(d / "crc.npz", x=np.arange(64, dtype=np.float64).reshape(8, 8))
    raw = bytearray((d / "crc.npz").read_bytes())
    at = raw.index(b"\x93NUMPY") + 200
    raw[at] ^= 0xFF
    (d / "crc.npz").write_bytes(bytes(raw))
    cases["crc.npz"] = "crc.npz"
    # .npy headers with negative dimensions
    _npy_with_header(d / "neg1.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 5), }", b"\0" * 80)
    cases["neg1.npy"] = "dimensions must be integers ≥ 0"
    _npy_with_header(d / "neg2.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (-2, -3, 5), }", b"\0" * 240)
    cases["neg2.npy"] = "dimensions must be integers ≥ 0"
    # a truncated Fortran-order .npy
    np.save(d / "fort.npy", np.asfortranarray(np.ones((50, 8))))
    full = (d / "fort.npy").read_bytes()
    (d / "fort.npy").write_bytes(full[: len(full) - 100])
    cases["fort.npy"] = "is truncated"
    np.save(d / "trunc.npy", np.ones((50, 8)))
    (d / "trunc.npy").write_bytes((d / "trunc.npy").read_bytes()[:-100])
    cases["trunc.npy"] = "is truncated"
    return cases


def test_malformed_files_are_value_errors_naming_the_file(tmp_path):
    ok = np.zeros((2, 4), np.float32)
    for name, expect in _bad_files(tmp_path).items():
        with pytest.raises(ValueError) as e:
            ld.score(tmp_path / name, ok)
        msg = str(e.value)
        assert name in msg and expect in msg, (name, msg)


def test_the_cli_reports_malformed_files_in_one_line(tmp_path, capsys):
    np.save(tmp_path / "ok.npy", np.zeros((2, 4), np.float32))
    for name, expect in _bad_files(tmp_path).items():
        rc, out, err = run_cli(capsys, "score", tmp_path / name, tmp_path / "ok.npy")
        assert rc == 1 and out == "", name
        assert err.startswith("logitdiv: error: ") and err.count("\n") == 1, err
        assert "unexpected" not in err and name in err and expect in err, err


def test_safetensors_reader_agrees_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    st.save_file({"first": a[0].copy(), "second": a[1].copy()}, str(tmp_path / "ok.safetensors"))
    for key in ("first", "second"):
        with open_source(str(tmp_path / "ok.safetensors"), key=key) as src:
            assert np.array_equal(np.concatenate(list(src.chunks(1))), st.load_file(str(tmp_path / "ok.safetensors"))[key])


# ------------------------------------------------------------------------------------------------
# 5. a memmap whose file was truncated after mapping: ValueError, not SIGBUS


def test_memmap_of_a_truncated_file_is_a_value_error(tmp_path):
    a, b = pair(rows=4096, classes=64, seed=171)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    r = run_python(
        """
        import os, sys, numpy as np, logitdiv as ld
        p = sys.argv[1]
        mm = np.load(p, mmap_mode="r")
        b = np.load(sys.argv[2])
        os.truncate(p, 4096)
        for what, call in (("score", lambda: ld.score(mm, b)), ("kl", lambda: ld.kl(mm, b)),
                           ("kl-view", lambda: ld.kl(np.asarray(mm)[100:], b[100:])),
                           ("softmax_ce", lambda: ld.softmax_ce(mm, np.zeros(len(b), np.int64)))):
            try:
                call()
                print(what, "no error")
            except ValueError as e:
                print(what, "ValueError", "truncated" in str(e) and p in str(e))
        """,
        str(tmp_path / "a.npy"), str(tmp_path / "b.npy"))
    assert r.returncode == 0, f"status {r.returncode} (-7: SIGBUS) {r.stderr[-2000:]}"
    assert r.stdout.split("\n")[:4] == ["score ValueError True", "kl ValueError True", "kl-view ValueError True",
                                        "softmax_ce ValueError True"], r.stdout


# ------------------------------------------------------------------------------------------------
# 7. huge integer options


def test_huge_integer_options_are_value_errors_not_overflow():
    s, t = pair(rows=3, classes=5, seed=172)
    y = np.array([0, 1, 2])
    calls = [
        lambda: ld.kl(s, t, temperature=10**400),
        lambda: ld.kl(s.astype(np.float32), t.astype(np.float32), temperature=-(10**400)),
        lambda: ld.js(s, t, beta=10**400),
        lambda: ld.kl(s, t, temperature=10**400, where=np.ones(5, bool)),
        lambda: ld.softmax_ce(s, y, label_smoothing=10**400),
        lambda: ld.softmax_ce(s, y, temperature=10**400),
        lambda: ld.gamma_ce(s, y, gamma=10**400),
        lambda: ld.kd_loss(s, t, y, temperature=2.0, alpha=10**400),
        lambda: ld.rdrop_loss(s, t, y, alpha=10**400),
        lambda: ld.score(s, t, temperature=10**400),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(ValueError):
            call()
    # a threshold above every float is a valid threshold
    _, summary = ld.score(s, t, threshold=10**400, metrics="kl")
    assert summary["kl"].above_threshold == 0


# ------------------------------------------------------------------------------------------------
# 8. big-endian arrays are accepted through a copy, everywhere


def test_big_endian_inputs_give_the_native_results():
    s, t = pair(rows=6, classes=5, seed=173)
    be = lambda x: x.astype(x.dtype.newbyteorder(">"))  # noqa: E731
    for dt in (np.float64, np.float32, np.float16):
        s1, t1 = s.astype(dt), t.astype(dt)
        assert np.array_equal(ld.kl(be(s1), be(t1)), ld.kl(s1, t1))
        assert np.array_equal(ld.sym_kl(be(s1), t1), ld.sym_kl(s1, t1))
    p = np.exp(t) / np.exp(t).sum(-1, keepdims=True)
    y01 = (t > 0).astype(np.float64)
    assert np.array_equal(ld.softmax_ce(s, be(p)), ld.softmax_ce(s, p))
    assert np.array_equal(ld.softmax_ce(s, be(np.array([0, 1, 2, 3, 4, 0], np.int64))), ld.softmax_ce(s, np.array([0, 1, 2, 3, 4, 0])))
    assert np.array_equal(ld.bce(be(s), be(y01)), ld.bce(s, y01))
    assert np.array_equal(ld.multilabel_ce(s, be(y01)), ld.multilabel_ce(s, y01))
    assert np.array_equal(ld.kd_loss(be(s), t, be(p), temperature=2.0, alpha=0.5), ld.kd_loss(s, t, p, temperature=2.0, alpha=0.5))
    v, gs, gt = ld.kl(be(s), be(t), grad=True)
    v0, gs0, gt0 = ld.kl(s, t, grad=True)
    assert np.array_equal(v, v0) and np.array_equal(gs, gs0) and gs.dtype == s.dtype and gs.dtype.isnative
    scores, _ = ld.score(be(s), t, metrics="kl,top1")
    assert np.array_equal(scores["kl"], ld.kl(s, t))


# ------------------------------------------------------------------------------------------------
# 9. a FIFO is refused, never waited on


def test_fifo_input_and_output_are_refused_without_hanging(tmp_path, capsys):
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    np.save(tmp_path / "b.npy", np.zeros((2, 3)))
    r = run_python(
        """
        import sys, logitdiv as ld, numpy as np
        try:
            ld.score(sys.argv[1], np.zeros((2, 3)))
        except ValueError as e:
            print("ValueError:", e)
        """,
        str(fifo), timeout=60)
    assert r.returncode == 0 and "ValueError:" in r.stdout and "FIFO" in r.stdout and str(fifo) in r.stdout, r
    rc, _, err = run_cli(capsys, "score", tmp_path / "b.npy", tmp_path / "b.npy", "--out", tmp_path / "pipe.npy")
    assert rc == 1 and "FIFO" in err and "--out" in err


# ------------------------------------------------------------------------------------------------
# 10. the command line's options and outputs


def test_json_with_an_infinite_threshold(ab, capsys):
    d, a, b = ab
    rc, out, err = run_cli(capsys, "score", d / "a.npy", d / "b.npy", "--json", "--threshold", "inf")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["threshold"] == "inf" and doc["metrics"]["kl"]["above_threshold"] == 0
    _, summary = ld.score(a, b, threshold=float("inf"))
    assert json.loads(summary.to_json())["threshold"] == "inf"
    _, summary = ld.score(a, b, threshold=float("-inf"), metrics="kl")
    assert json.loads(summary.to_json())["threshold"] == "-inf"


def test_out_options_are_checked_before_the_run(ab, capsys, monkeypatch):
    d, a, b = ab
    (d / "dir.npy").mkdir()
    calls = []
    import logitdiv.scoring.batch

    monkeypatch.setattr(logitdiv.scoring.batch, "score_sources", lambda *x, **k: calls.append(1))
    rc, _, err = run_cli(capsys, "score", d / "a.npy", d / "b.npy", "--out", d / "dir.npy")
    assert rc == 1 and "is a directory" in err and "--out" in err
    rc, _, err = run_cli(capsys, "score", d / "a.npy", d / "b.npy", "--top", "-1")
    assert rc == 1 and "--top must be an int ≥ 0" in err and "top_k_worst" not in err
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    rc, _, err = run_cli(capsys, "score", d / "a.npy", d / "b.npy", "--out", d / "x.parquet")
    assert rc == 1 and "writing Parquet needs pyarrow" in err and "reading writing" not in err
    assert calls == []


# ------------------------------------------------------------------------------------------------
# 11. torch bfloat16 tensors are scored


def test_score_of_torch_bfloat16_tensors():
    torch = pytest.importorskip("torch")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a, b = pair(rows=64, classes=12, seed=174)
    ta, tb = torch.from_numpy(a).to(torch.bfloat16), torch.from_numpy(b).to(torch.bfloat16)
    scores, summary = ld.score(ta, tb, metrics="kl,top1", chunk_rows=10)
    na = ta.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    nb = tb.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    assert np.array_equal(scores["kl"], ld.kl(na, nb)) and summary.dtypes == ("bfloat16", "bfloat16")


# ------------------------------------------------------------------------------------------------
# 12. dask arrays of unknown chunk sizes


def test_dask_unknown_chunk_sizes_are_named():
    da = pytest.importorskip("dask.array")
    import logitdiv.scoring.dask as ldd

    a, b = pair(rows=100, classes=8, seed=175)
    A, B = da.from_array(a, chunks=(30, 8)), da.from_array(b, chunks=(30, 8))
    mask = A[:, 0] > 0
    for x, y in ((A[mask], B[mask]), (A[mask], B), (A, B[mask])):
        with pytest.raises(ValueError, match="unknown chunk sizes.*compute_chunk_sizes"):
            ldd.score(x, y)
    am, bm = A[mask], B[mask]
    am.compute_chunk_sizes()
    bm.compute_chunk_sizes()
    scores, _ = ldd.score(am, bm, metrics="kl").compute()
    keep = a[:, 0] > 0
    assert np.array_equal(scores["kl"], ld.kl(a[keep], b[keep]))


# ------------------------------------------------------------------------------------------------
# 13. fork while another thread holds output buffers inside a kernel


def test_a_forked_child_can_use_the_buffers_another_thread_held():
    rng = np.random.default_rng(176)
    s = rng.standard_normal((512, 2048)).astype(np.float32)  # > 4096 elements: the GIL is released
    t = (s + 0.1 * rng.standard_normal(s.shape)).astype(np.float32)
    o = np.empty(512, np.float32)
    expect = ld.kl(s, t)
    stop = threading.Event()
    errors: list = []

    def loop():
        try:
            while not stop.is_set():
                ld.kl(s, t, out=o)
                ld.softmax_ce(s, np.zeros(512, np.int64), grad=True, grad_out=np.empty_like(s))
        except BaseException as e:  # noqa: BLE001
            errors.append(repr(e))

    def child():
        mine = np.empty(512, np.float32)
        ld.kl(s, t, out=o)  # the buffer the parent's thread was writing at the fork
        ld.kl(o.reshape(512, 1), o.reshape(512, 1), out=mine)
        ld.kl(s, t, out=mine)
        return repr((bool(np.array_equal(o, expect)), bool(np.array_equal(mine, expect))))

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        outs = [fork_and_run(child) for _ in range(8)]
    finally:
        stop.set()
        worker.join(timeout=300)
    assert not errors, errors
    assert outs == ["(True, True)"] * 8


# ------------------------------------------------------------------------------------------------
# The whole public API: only TypeError, ValueError and OSError (for files) leave it


def only_ok_errors(call, what: str) -> None:
    """Runs `call()`: it may return or raise one of OK_ERRORS; any other exception fails the test,
    naming `what` was called."""
    try:
        call()
    except OK_ERRORS:
        pass
    except BaseException as e:  # noqa: BLE001
        pytest.fail(f"{what} raised {type(e).__name__}: {e}")


def _weird_values():
    return [None, "x", 10**400, -(10**400), float("nan"), float("inf"), object(), [1, [2]], b"\x00", {"a": 1}, (),
            np.array([]), np.array(["a"]), np.array([1 + 2j]), True, -1, 0]


def test_only_type_value_and_os_errors_leave_the_api(tmp_path):
    s, t = pair(rows=3, classes=4, seed=177)
    y = np.array([0, 1, 2])
    calls = {
        "kl": lambda **k: ld.kl(s, t, **k), "js": lambda **k: ld.js(s, t, **k),
        "sigmoid_kl": lambda **k: ld.sigmoid_kl(s, t, **k),
        "softmax_ce": lambda **k: ld.softmax_ce(s, y, **k), "bce": lambda **k: ld.bce(s, (t > 0) * 1.0, **k),
        "multilabel_ce": lambda **k: ld.multilabel_ce(s, (t > 0) * 1.0, **k),
        "gamma_ce": lambda **k: ld.gamma_ce(s, y, **{"gamma": 0.5, **k}),
        "kd_loss": lambda **k: ld.kd_loss(s, t, y, **{"temperature": 2.0, "alpha": 0.5, **k}),
        "rdrop_loss": lambda **k: ld.rdrop_loss(s, t, y, **{"alpha": 1.0, **k}),
        "score": lambda **k: ld.score(s, t, **k),
    }
    options = {
        "kl": ["temperature", "reduction", "grad", "where", "out"], "js": ["beta"], "sigmoid_kl": ["weights"],
        "softmax_ce": ["label_smoothing", "ignore_index", "temperature"], "bce": ["pos_weight"],
        "multilabel_ce": ["reduction"], "gamma_ce": ["gamma", "threshold"], "kd_loss": ["alpha", "temperature", "t2"],
        "rdrop_loss": ["alpha", "kind"],
        "score": ["metrics", "temperature", "key", "chunk_rows", "top_k_worst", "threshold"],
    }
    for fn, names in options.items():
        for opt in names:
            for v in _weird_values():
                only_ok_errors(lambda: calls[fn](**{opt: v}), f"{fn}({opt}={v!r:.40})")
    # weird things as the arrays themselves
    for v in _weird_values():
        for fn in (lambda x: ld.kl(x, x), lambda x: ld.softmax_ce(s, x), lambda x: ld.bce(s, x),
                   lambda x: ld.score(x, s), lambda x: ld.score(s, x)):
            only_ok_errors(lambda: fn(v), f"{v!r:.40}")
    # every malformed file, through ld.score and the dask reader
    for name in _bad_files(tmp_path):
        with pytest.raises(OK_ERRORS):
            ld.score(tmp_path / name, np.zeros((2, 4), np.float32))


def test_only_type_value_and_os_errors_leave_torch_and_dask():
    torch = pytest.importorskip("torch")
    da = pytest.importorskip("dask.array")
    import logitdiv.scoring.dask as ldd
    import logitdiv.torch as ldt

    s, t = pair(rows=3, classes=4, seed=178)
    ts, tt = torch.from_numpy(s), torch.from_numpy(t)
    for v in _weird_values():
        for fn in (lambda v: ldt.kl(ts, tt, temperature=v), lambda v: ldt.js(ts, tt, beta=v),
                   lambda v: ldt.softmax_ce(ts, torch.tensor([0, 1, 2]), label_smoothing=v),
                   lambda v: ldd.score(da.from_array(s), da.from_array(t), temperature=v),
                   lambda v: ldd.score(da.from_array(s), da.from_array(t), threshold=v),
                   lambda v: ld.score(ts, v)):
            only_ok_errors(lambda: fn(v), f"{v!r:.40}")


def test_fortran_npy_files_of_any_rank_and_byte_order(tmp_path):
    a, b = pair(rows=240, classes=12, seed=179)
    ref = ld.kl(a, b)
    np.save(tmp_path / "f3.npy", np.asfortranarray(a.reshape(6, 40, 12)))
    np.save(tmp_path / "be.npy", np.asfortranarray(a.astype(">f8")))
    np.save(tmp_path / "b.npy", b)
    for name, expect in (("f3.npy", ref), ("be.npy", ld.kl(a.astype(np.float64), b))):
        scores, _ = ld.score(tmp_path / name, tmp_path / "b.npy", metrics="kl", chunk_rows=37)
        assert np.array_equal(scores["kl"], expect), name


def test_damaged_files_never_give_an_unexpected_error(tmp_path, capsys):
    """Every valid file type, cut short at many lengths and with bytes flipped at many places:
    ld.score raises only TypeError/ValueError/OSError (or scores what it read), and the command
    line never prints "unexpected"."""
    a = np.arange(48, dtype=np.float32).reshape(6, 8) / 7
    good = {}
    np.save(tmp_path / "g.npy", a)
    np.save(tmp_path / "gf.npy", np.asfortranarray(a))
    np.savez(tmp_path / "g.npz", x=a)
    np.savez_compressed(tmp_path / "gc.npz", x=np.asfortranarray(a))
    _safetensors(tmp_path / "g.safetensors", {"x": {"dtype": "F32", "shape": [6, 8], "data_offsets": [0, 192]}}, a.tobytes())
    for name in ("g.npy", "gf.npy", "g.npz", "gc.npz", "g.safetensors"):
        good[name] = (tmp_path / name).read_bytes()
    np.save(tmp_path / "ok.npy", a)
    rng = np.random.default_rng(180)
    n = 0
    for name, raw in good.items():
        ext = name[name.index("."):]
        variants = [raw[:k] for k in sorted(set(np.linspace(0, len(raw) - 1, 25).astype(int)))]
        for at in rng.choice(len(raw), size=min(40, len(raw)), replace=False):
            flipped = bytearray(raw)
            flipped[at] ^= 1 << int(rng.integers(8))
            variants.append(bytes(flipped))
        for v in variants:
            p = tmp_path / f"bad{n}{ext}"
            n += 1
            p.write_bytes(v)
            only_ok_errors(lambda: ld.score(p, a), f"{name} damaged ({len(v)} of {len(raw)} bytes)")
            rc, _, err = run_cli(capsys, "score", p, tmp_path / "ok.npy")
            assert "unexpected" not in err and rc in (0, 1), err
