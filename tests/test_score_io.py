"""ld.score from files and open objects: .npy (memory-mapped), .npz (stored and deflated),
.safetensors, Parquet, Arrow IPC, pyarrow objects, sliceable arrays — every reader gives exactly
the in-memory result, whatever the chunk size; unreadable inputs give clear errors."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import logitdiv as ld
from logitdiv.scoring.readers import open_source

from _score_ref import pair, summary_equal

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
st = pytest.importorskip("safetensors.numpy")

METRICS = ("kl", "sym_kl", "js", "sigmoid_sym_kl", "top1", "top5")


def fsl(arr: np.ndarray):
    """A (rows, C) array as a pyarrow FixedSizeListArray."""
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])


def write(fmt: str, directory, arr: np.ndarray, name: str) -> tuple:
    """Writes `arr` in format `fmt`; returns (path or object, key) to score it by."""
    path = os.path.join(directory, f"{name}.{fmt.split('-')[0]}")
    if fmt == "npy":
        np.save(path, arr)
        return path, None
    if fmt == "npy-memmap":
        np.save(path.replace(".npy-memmap", ".npy"), arr)
        return np.load(path.replace(".npy-memmap", ".npy"), mmap_mode="r"), None
    if fmt == "npz":
        np.savez(path, other=np.zeros(3), logits=arr)
        return path, "logits"
    if fmt == "npz-deflated":
        path = path.replace(".npz-deflated", ".npz")
        np.savez_compressed(path, logits=arr, extra=np.arange(4))
        return path, "logits"
    if fmt == "safetensors":
        st.save_file({"logits": arr, "hidden": np.zeros((2, 2), np.float32)}, path)
        return path, "logits"
    if fmt == "parquet":
        table = pa.table({"id": pa.array(np.arange(len(arr))), "logits": fsl(arr)})
        pq.write_table(table, path, row_group_size=97)  # many row groups, not aligned with chunks
        return path, "logits"
    if fmt == "arrow":
        table = pa.table({"logits": fsl(arr), "id": pa.array(np.arange(len(arr)))})
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            for batch in table.to_batches(max_chunksize=130):
                w.write_batch(batch)
        return path, "logits"
    if fmt == "arrow-stream":
        path = path.replace(".arrow-stream", ".arrows")
        table = pa.table({"logits": fsl(arr)})
        with pa.OSFile(path, "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
            for batch in table.to_batches(max_chunksize=211):
                w.write_batch(batch)
        return path, None
    if fmt == "pa-table":
        chunks = [fsl(arr[i : i + 150]) for i in range(0, len(arr), 150)]
        return pa.table({"logits": pa.chunked_array(chunks), "y": pa.array(np.arange(len(arr)))}), "logits"
    if fmt == "pa-array":
        return fsl(arr), None
    if fmt == "parquet-file":
        pq.write_table(pa.table({"logits": fsl(arr)}), path.replace(".parquet-file", ".parquet"), row_group_size=200)
        return pq.ParquetFile(path.replace(".parquet-file", ".parquet")), None
    if fmt == "npz-object":
        np.savez(path.replace(".npz-object", ".npz"), logits=arr)
        return np.load(path.replace(".npz-object", ".npz")), None
    raise ValueError(fmt)


FORMATS = ["npy", "npy-memmap", "npz", "npz-deflated", "safetensors", "parquet", "arrow", "arrow-stream",
           "pa-table", "pa-array", "parquet-file", "npz-object"]


@pytest.fixture(scope="module")
def data():
    a, b = pair(rows=1000, classes=40, seed=11)
    a[3, 2] = np.nan
    ref = ld.score(a, b, metrics=METRICS, threshold=0.3, top_k_worst=8)
    return a, b, ref


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk_rows", [64, 1000, None])
def test_every_reader_gives_the_in_memory_result(tmp_path, data, fmt, chunk_rows):
    a, b, (ref_scores, ref_summary) = data
    xa, key_a = write(fmt, tmp_path, a, "base")
    xb, key_b = write(fmt, tmp_path, b, "cand")
    scores, summary = ld.score(xa, xb, key=(key_a, key_b), metrics=METRICS, threshold=0.3, top_k_worst=8,
                               chunk_rows=chunk_rows)
    for name in METRICS:
        assert np.array_equal(scores[name], ref_scores[name], equal_nan=True), name
    assert summary_equal(summary, ref_summary)


def test_formats_can_be_mixed_and_half_precision_is_kept(tmp_path):
    a, b = pair(rows=300, classes=24, seed=12)
    b16 = b.astype(np.float16)
    pa_path, _ = write("npy", tmp_path, a, "a")
    pb_path, key = write("safetensors", tmp_path, b16, "b")
    scores, s = ld.score(pa_path, pb_path, key=(None, key), chunk_rows=41)
    assert s.dtypes == ("float32", "float16")
    assert np.array_equal(scores["kl"], ld.kl(a, b16))
    with open_source(pb_path, key, "b") as src:
        chunk = next(src.chunks(10))
        assert chunk.dtype == np.float16 and isinstance(chunk, np.memmap)  # no upcasting copy


def test_bfloat16_safetensors(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a, b = pair(rows=200, classes=16, seed=13)
    abf, bbf = a.astype(ml_dtypes.bfloat16), b.astype(ml_dtypes.bfloat16)
    st.save_file({"x": abf}, str(tmp_path / "a.safetensors"))
    st.save_file({"x": bbf}, str(tmp_path / "b.safetensors"))
    scores, s = ld.score(tmp_path / "a.safetensors", tmp_path / "b.safetensors", chunk_rows=30)
    assert s.dtypes == ("bfloat16", "bfloat16")
    assert np.array_equal(scores["kl"], ld.kl(abf, bbf))


def test_npy_windows_are_memory_mapped_and_views_of_memmaps_keep_their_offset(tmp_path):
    a, b = pair(rows=500, classes=8, seed=14)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    with open_source(str(tmp_path / "a.npy")) as src:
        chunks = list(src.chunks(128))
        assert all(isinstance(c, np.memmap) for c in chunks) and [len(c) for c in chunks] == [128, 128, 128, 116]
        assert np.array_equal(np.concatenate(chunks), a)
    mm_a, mm_b = np.load(tmp_path / "a.npy", mmap_mode="r"), np.load(tmp_path / "b.npy", mmap_mode="r")
    src = open_source(mm_a[123:456])
    assert type(src).__name__ == "MappedArraySource"  # read through the memmap itself (issue 17)
    chunks = list(src.chunks(50))
    assert all(np.shares_memory(c, mm_a) for c in chunks)
    assert np.array_equal(np.concatenate(chunks), a[123:456])
    scores, _ = ld.score(mm_a[123:456], mm_b[123:456], metrics="kl", chunk_rows=50)
    assert np.array_equal(scores["kl"], ld.kl(a[123:456], b[123:456]))


def test_fortran_order_and_leading_axes_in_files(tmp_path):
    a, b = pair(rows=240, classes=12, seed=15)
    np.save(tmp_path / "a.npy", np.asfortranarray(a))
    np.save(tmp_path / "b.npy", b.reshape(4, 60, 12))
    np.savez(tmp_path / "c.npz", np.asfortranarray(b))
    ref = ld.kl(a, b)
    scores, s = ld.score(tmp_path / "a.npy", tmp_path / "b.npy", metrics="kl", chunk_rows=37)
    assert np.array_equal(scores["kl"], ref) and s.rows == 240
    scores, _ = ld.score(tmp_path / "a.npy", tmp_path / "c.npz", metrics="kl", chunk_rows=37)
    assert np.array_equal(scores["kl"], ref)


def test_sliceable_arrays_stream_slab_by_slab():
    dask_array = pytest.importorskip("dask.array")
    a, b = pair(rows=600, classes=10, seed=16)
    da_a = dask_array.from_array(a.reshape(20, 30, 10), chunks=(3, 30, 10))
    da_b = dask_array.from_array(b.reshape(20, 30, 10), chunks=(7, 30, 10))
    src = open_source(da_a)
    assert type(src).__name__ == "SliceableSource"
    scores, _ = ld.score(da_a, da_b, metrics="kl,top1", chunk_rows=45)
    assert np.array_equal(scores["kl"], ld.kl(a, b))


# -- errors -------------------------------------------------------------------------------------


# (name, contents: bytes from the valid b.npy's bytes, or None for no file, raised, match); "."
# names the folder tmp_path itself
UNREADABLE = [
    pytest.param("nope.npy", None, FileNotFoundError, "no such file", id="missing"),
    pytest.param("junk.bin", lambda good: b"hello, not logits", ValueError, "unknown file format", id="unknown-format"),
    pytest.param("bad.npy", lambda good: b"\x93NUMPY garbage", ValueError, "not a valid .npy", id="bad-npy"),
    pytest.param("short.npy", lambda good: good[: len(good) - 8], ValueError, "truncated", id="truncated-npy"),
    pytest.param(".", None, IsADirectoryError, None, id="directory"),
    pytest.param("bad.npz", lambda good: b"PK\x03\x04 not really a zip", ValueError, "not a readable .npz", id="bad-npz"),
    pytest.param("bad.parquet", lambda good: b"PAR1 nope", ValueError, "not a readable Parquet", id="bad-parquet"),
]


@pytest.mark.parametrize("name, contents, raised, match", UNREADABLE)
def test_missing_and_unreadable_files(tmp_path, name, contents, raised, match):
    _, b = pair(rows=10, classes=4)
    np.save(tmp_path / "b.npy", b)
    if contents is not None:
        (tmp_path / name).write_bytes(contents((tmp_path / "b.npy").read_bytes()))
    with pytest.raises(raised, match=match):
        ld.score(tmp_path / name, tmp_path / "b.npy")


def test_keys(tmp_path):
    a, b = pair(rows=10, classes=4)
    np.savez(tmp_path / "two.npz", x=a, y=b)
    np.savez(tmp_path / "one.npz", only=b)
    with pytest.raises(ValueError, match=r"holds 2 arrays \('x', 'y'\); choose one with key="):
        ld.score(tmp_path / "two.npz", tmp_path / "one.npz")
    with pytest.raises(ValueError, match=r"has no array 'z'; it holds 'x', 'y'"):
        ld.score(tmp_path / "two.npz", tmp_path / "one.npz", key="z")
    scores, _ = ld.score(tmp_path / "two.npz", tmp_path / "one.npz", key=("x", None), metrics="kl")
    assert np.array_equal(scores["kl"], ld.kl(a, b))
    scores, _ = ld.score(tmp_path / "two.npz", tmp_path / "two.npz", key=("x", "y.npy"), metrics="kl")
    assert np.array_equal(scores["kl"], ld.kl(a, b))
    st.save_file({"p": a, "q": b}, str(tmp_path / "t.safetensors"))
    with pytest.raises(ValueError, match=r"holds 2 tensors"):
        ld.score(tmp_path / "t.safetensors", tmp_path / "one.npz")
    with pytest.raises(ValueError, match=r"has no tensor 'r'"):
        ld.score(tmp_path / "t.safetensors", tmp_path / "one.npz", key=("r", None))
    pq.write_table(pa.table({"u": fsl(a), "v": fsl(b)}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"has 2 columns"):
        ld.score(tmp_path / "t.parquet", tmp_path / "one.npz")
    with pytest.raises(ValueError, match=r"has no column 'w'"):
        ld.score(tmp_path / "t.parquet", tmp_path / "one.npz", key=("w", None))


def test_bad_contents(tmp_path):
    a, b = pair(rows=10, classes=4)
    np.save(tmp_path / "b.npy", b)
    np.save(tmp_path / "ints.npy", np.zeros((10, 4), np.int64))
    with pytest.raises(TypeError, match="int64"):
        ld.score(tmp_path / "ints.npy", tmp_path / "b.npy")
    st.save_file({"x": np.zeros((10, 4), np.int32)}, str(tmp_path / "i.safetensors"))
    with pytest.raises(TypeError, match="I32"):
        ld.score(tmp_path / "i.safetensors", tmp_path / "b.npy")
    pq.write_table(pa.table({"x": pa.array([list(r) for r in a])}), tmp_path / "list.parquet")  # variable-size lists
    with pytest.raises(TypeError, match="fixed_size_list"):
        ld.score(tmp_path / "list.parquet", tmp_path / "b.npy")
    arr = pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), 4)
    with_null = pa.array([None] + arr.to_pylist()[1:], type=arr.type)
    with pytest.raises(ValueError, match="1 null rows"):
        ld.score(with_null, b)
    np.save(tmp_path / "short.npy", b[:, :3])
    with pytest.raises(ValueError, match="class counts differ"):
        ld.score(tmp_path / "b.npy", tmp_path / "short.npy")


def test_npz_member_is_streamed_not_loaded(tmp_path):
    """A deflated member is read sequentially: the source never holds more than a chunk."""
    a, _ = pair(rows=2000, classes=50, seed=17)
    np.savez_compressed(tmp_path / "a.npz", a=a)
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        assert zf.getinfo("a.npy").compress_type == zipfile.ZIP_DEFLATED
    with open_source(str(tmp_path / "a.npz")) as src:
        sizes = [c.nbytes for c in src.chunks(100)]
    assert max(sizes) == 100 * 50 * 4 and sum(sizes) == a.nbytes


def test_big_endian_files_are_swapped_chunk_by_chunk(tmp_path):
    a, b = pair(rows=300, classes=10, seed=18)
    np.save(tmp_path / "a.npy", a.astype(">f4"))
    np.savez(tmp_path / "b.npz", b=b.astype(">f8"))
    scores, s = ld.score(tmp_path / "a.npy", tmp_path / "b.npz", metrics="kl,top1", chunk_rows=64)
    assert s.dtypes == ("float32", "float64")
    assert np.array_equal(scores["kl"], ld.kl(a, b.astype(np.float64)))
