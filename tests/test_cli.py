"""The command line: `logitdiv score` (human report, --json schema, --out, --plot, options,
progress) and `logitdiv demo`; errors exit non-zero with one line and no traceback."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import logitdiv as ld
from logitdiv.scoring.cli import main
from logitdiv.scoring.text import fmt

from _score_ref import pair

BIN = os.path.join(os.path.dirname(sys.executable), "logitdiv")

TOP_KEYS = {"schema", "logitdiv_version", "inputs", "rows", "classes", "dtype", "temperature", "threshold",
            "top_k_worst", "quantile_method", "primary", "metrics", "worst_rows", "outputs"}
METRIC_KEYS = {"kind", "rows", "count", "nonfinite", "nan", "inf", "mean", "sem", "std", "min", "median", "p90",
               "p99", "p99_9", "max", "above_threshold", "share_above_threshold", "worst"}


@pytest.fixture
def files(tmp_path):
    a, b = pair(rows=800, classes=30, seed=31)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b.astype(np.float16))
    return str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), a, b.astype(np.float16)


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_human_report(files, capsys):
    pa, pb, a, b = files
    rc, out, err = run(capsys, "score", pa, pb, "--threshold", "0.1", "--top", "3")
    assert rc == 0 and err == ""  # stderr is not a terminal: no progress bar
    _, s = ld.score(a, b, threshold=0.1, top_k_worst=3)
    assert out.startswith("logitdiv score: 800 rows × 30 classes (base float32, candidate float16), temperature 1\n")
    assert out == s.format(title="logitdiv score") + "\n"
    for word in ("mean ± SE", "median", "p90", "p99", "p99.9", "max", "> 0.1", "non-finite rows",
                 "top-1 agreement", "worst 3 rows by kl"):
        assert word in out, word
    assert f"{fmt(s['kl'].mean)} ± {fmt(s['kl'].sem, 2)}" in out
    assert fmt(s["js"].p99_9) in out
    worst = [line.split()[0] for line in out.splitlines()[-5:-2]]
    assert worst == [str(r["row"]) for r in s.worst_rows]


def test_json_schema(files, capsys):
    pa, pb, a, b = files
    rc, out, err = run(capsys, "score", pa, pb, "--json", "--metric", "kl,js", "--metric", "top1,top5",
                       "--threshold", "0.05", "--top", "4", "--temperature", "1.5")
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert set(doc) == TOP_KEYS
    assert doc["schema"] == "logitdiv.score/1" and doc["logitdiv_version"] == ld.__version__
    assert doc["inputs"] == {"base": pa, "candidate": pb, "base_key": None, "candidate_key": None}
    assert doc["outputs"] == {"scores": None, "plot": None}
    assert (doc["rows"], doc["classes"], doc["dtype"]) == (800, 30, {"base": "float32", "candidate": "float16"})
    assert (doc["temperature"], doc["threshold"], doc["top_k_worst"]) == (1.5, 0.05, 4)
    assert doc["quantile_method"] == "linear" and doc["primary"] == "kl"
    assert list(doc["metrics"]) == ["kl", "js", "top1", "top5"]
    for name, m in doc["metrics"].items():
        assert set(m) == METRIC_KEYS, name
        assert m["kind"] == ("agreement" if name.startswith("top") else "divergence")
        assert isinstance(m["count"], int) and isinstance(m["mean"], float)
        assert all(set(w) == {"row", "value"} for w in m["worst"]) and len(m["worst"]) == 4
    assert doc["metrics"]["top1"]["above_threshold"] is None
    assert [set(r) for r in doc["worst_rows"]] == [{"row", "kl", "js", "top1", "top5"}] * 4
    _, s = ld.score(a, b, metrics="kl,js,top1,top5", threshold=0.05, top_k_worst=4, temperature=1.5)
    expect = s.to_dict()
    for k in expect:
        assert doc[k] == expect[k], k


@pytest.mark.parametrize("ext", [".npy", ".csv", ".parquet"])
def test_out_round_trips(files, tmp_path, capsys, ext):
    pa, pb, a, b = files
    dest = str(tmp_path / f"scores{ext}")
    rc, out, err = run(capsys, "score", pa, pb, "--out", dest, "--metric", "kl,sym_kl,top1,top3")
    assert rc == 0 and f"wrote per-row scores to {dest}" in out
    scores, _ = ld.score(a, b, metrics="kl,sym_kl,top1,top3")
    names = list(scores)
    if ext == ".npy":
        rec = np.load(dest)
        assert rec.dtype.names == tuple(names)
        cols = {n: rec[n] for n in names}
    elif ext == ".csv":
        with open(dest, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["row"] + names
        assert [int(r[0]) for r in rows[1:]] == list(range(800))
        cols = {n: np.array([float(r[i + 1]) for r in rows[1:]]).astype(scores[n].dtype) for i, n in enumerate(names)}
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        table = pq.read_table(dest)
        assert table.column_names == ["row"] + names
        assert table.column("row").to_numpy().tolist() == list(range(800))
        cols = {n: table.column(n).to_numpy() for n in names}
    for n in names:
        assert cols[n].dtype == scores[n].dtype
        assert np.array_equal(cols[n], scores[n]), n


def test_plot_writes_a_png(files, tmp_path, capsys):
    pa, pb, _, _ = files
    dest = str(tmp_path / "hist.png")
    rc, out, _ = run(capsys, "score", pa, pb, "--plot", dest, "--threshold", "0.1")
    assert rc == 0 and f"wrote histogram to {dest}" in out
    with open(dest, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    image = pytest.importorskip("matplotlib.image")
    img = image.imread(dest)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # something was drawn


def test_keys_and_options(tmp_path, capsys):
    a, b = pair(rows=200, classes=12, seed=32)
    np.savez(tmp_path / "ab.npz", base=a, cand=b)
    np.save(tmp_path / "b.npy", b)
    rc, out, _ = run(capsys, "score", str(tmp_path / "ab.npz"), str(tmp_path / "ab.npz"), "--base-key", "base",
                     "--candidate-key", "cand", "--json", "--metric", "kl,rkl", "-T", "2", "--chunk-rows", "7")
    assert rc == 0
    doc = json.loads(out)
    _, s = ld.score(a, b, metrics="kl,rkl", temperature=2.0)
    assert doc["metrics"] == s.to_dict()["metrics"]
    assert doc["inputs"]["base_key"] == "base" and doc["inputs"]["candidate_key"] == "cand"
    rc, out, _ = run(capsys, "score", str(tmp_path / "ab.npz"), str(tmp_path / "b.npy"), "--key", "base", "--json")
    assert rc == 0 and json.loads(out)["metrics"]["kl"] == ld.score(a, b)[1].to_dict()["metrics"]["kl"]


def test_progress_only_when_asked_or_on_a_terminal(files, capsys):
    pa, pb, _, _ = files
    rc, _, err = run(capsys, "score", pa, pb, "--chunk-rows", "100")
    assert rc == 0 and err == ""
    rc, _, err = run(capsys, "score", pa, pb, "--chunk-rows", "100", "--progress")
    assert rc == 0 and "800" in err  # tqdm's (or the built-in) bar went to stderr


def test_builtin_progress_bar():
    import io

    from logitdiv.scoring.progress import _Bar

    stream = io.StringIO()
    bar = _Bar(1000, "scoring", stream=stream)
    bar.update(1000)
    bar.close()
    text = stream.getvalue()
    assert "100%" in text and "1,000/1,000 rows" in text and text.endswith("\r")


def _cli(*argv, **kw):
    return subprocess.run([BIN, *argv], capture_output=True, text=True, timeout=120, **kw)


def test_entry_point_is_installed():
    assert os.path.exists(BIN)
    r = _cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"logitdiv {ld.__version__}"
    r = subprocess.run([sys.executable, "-m", "logitdiv", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"logitdiv {ld.__version__}"


def _one_line_error(r, *words):
    assert r.returncode != 0
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("logitdiv") and "error:" in lines[0]
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_errors_are_one_line(tmp_path, files):
    pa, pb, a, b = files
    np.save(tmp_path / "narrow.npy", a[:, :29])
    np.savez(tmp_path / "two.npz", x=a, y=a)
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    cases = [
        (["score", str(tmp_path / "missing.npy"), pb], ["no such file", "missing.npy"]),
        (["score", pa, str(tmp_path / "narrow.npy")], ["same rows and classes", "(800, 30)", "(800, 29)"]),
        (["score", str(tmp_path / "two.npz"), pa], ["holds 2 arrays", "--key"]),
        (["score", str(tmp_path / "two.npz"), pa, "--key", "z"], ["has no array 'z'"]),
        (["score", pa, pb, "--metric", "kl,bogus"], ["unknown metric 'bogus'"]),
        (["score", pa, pb, "--temperature", "-1"], ["temperature"]),
        (["score", pa, pb, "--temperature", "warm"], ["invalid float value"]),
        (["score", pa, pb, "--out", str(tmp_path / "s.txt")], ["extension must be one of .npy, .csv, .parquet"]),
        (["score", pa, pb, "--out", str(tmp_path / "nodir" / "s.npy")], ["does not exist"]),
        (["score", pa, pb, "--plot", str(tmp_path / "h.png"), "--metric", "top1"], ["--plot draws divergences"]),
        (["score", str(tmp_path / "junk.npy"), pb], ["not a valid .npy"]),
        (["score", pa], ["CANDIDATE"]),
        (["frobnicate"], ["invalid choice"]),
    ]
    for argv, words in cases:
        _one_line_error(_cli(*argv), *words)


def test_demo(capsys, tmp_path):
    rc, out, err = run(capsys, "demo")
    assert rc == 0 and err == ""
    for word in ("logitdiv demo: 6,000 rows × 256 classes (base float32, candidate float16)", "mean ± SE",
                 "p99.9", "> 0.1", "top-1 agreement", "worst 10 rows by kl"):
        assert word in out, word
    rc, out2, _ = run(capsys, "demo")
    strip = lambda text: [l for l in text.splitlines() if "logitdiv-demo-" not in l]  # noqa: E731 (temp dir differs)
    assert strip(out) == strip(out2)  # deterministic

    rc, out, _ = run(capsys, "demo", "--json", "--dir", str(tmp_path / "d"), "--out", str(tmp_path / "d.csv"),
                     "--plot", str(tmp_path / "d.png"))
    assert rc == 0
    doc = json.loads(out)
    outliers = set(doc["inputs"]["demo"]["outlier_rows"])
    kl = doc["metrics"]["kl"]
    assert doc["rows"] == 6000 and doc["classes"] == 256
    assert kl["median"] < 0.01 < 1 < kl["max"]      # mostly agree ...
    assert doc["metrics"]["top1"]["mean"] > 0.9
    assert {w["row"] for w in kl["worst"]} <= outliers  # ... the rows that disagree badly are the outliers
    assert kl["above_threshold"] >= len(outliers) // 2
    assert os.path.exists(tmp_path / "d" / "base.npy") and os.path.exists(tmp_path / "d" / "candidate.npy")
    assert os.path.getsize(tmp_path / "d.png") > 1000
    scores, s = ld.score(tmp_path / "d" / "base.npy", tmp_path / "d" / "candidate.npy", threshold=0.1)
    assert doc["metrics"] == s.to_dict()["metrics"]


def test_demo_through_the_entry_point():
    r = _cli("demo", "--rows", "500", "--classes", "64", "--top", "3")
    assert r.returncode == 0 and r.stderr == ""
    assert "logitdiv demo: 500 rows × 64 classes" in r.stdout and "worst 3 rows by kl" in r.stdout
