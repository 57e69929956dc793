"""llama.cpp's KL-divergence base file: written from logits and tokens, read back (streamed) as
the base input with its tokens; the layout checked byte by byte against an independent
re-derivation of the format; the quantisation's effect bounded."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import logitdiv as ld
from logitdiv.scoring.cli import main
from logitdiv.scoring.llama import KldBaseSource
from logitdiv.scoring.writers import write_kld_base


def _data(n_chunk=3, n_ctx=16, vocab=37, seed=0, spread=4.0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n_chunk * n_ctx, vocab)) * spread).astype(np.float32)
    logits[n_ctx // 2 + 1, 3] = 60.0  # a scored row with every other class more than 16 nats below the top
    tokens = rng.integers(0, vocab, n_chunk * n_ctx)
    return logits, tokens


def _scored(x, n_chunk, n_ctx):
    return x.reshape(n_chunk, n_ctx, -1)[:, n_ctx // 2 : n_ctx - 1].reshape(-1, x.shape[-1])


def test_layout_matches_the_format(tmp_path):
    logits, tokens = _data()
    p = tmp_path / "base.kld"
    assert write_kld_base(str(p), logits, tokens, 16) == (3, 3 * 7)
    raw = p.read_bytes()
    assert raw[:8] == b"_logits_" and struct.unpack("<iii", raw[8:20]) == (16, 37, 3)
    assert np.array_equal(np.frombuffer(raw[20 : 20 + 4 * 48], "<i4"), tokens)
    nv = 2 * ((37 + 1) // 2) + 4
    rec = np.frombuffer(raw[20 + 4 * 48 :], "<u2").reshape(-1, nv)
    assert rec.shape[0] == 21
    x = _scored(logits, 3, 16).astype(np.float64)
    # independent float64 re-derivation of one record's header and a quantised value
    r = 4
    mx, mn = x[r].max(), max(x[r].min(), x[r].max() - 16)
    scale, mlp = rec[r, :4].copy().view("<f4")
    assert scale == pytest.approx((mx - mn) / 65535, rel=1e-6)
    assert mlp == pytest.approx(mn - mx - np.log(np.exp(x[r] - mx).sum()), abs=1e-5)
    q = rec[r, 4 : 4 + 37].astype(np.float64)
    lp = scale * q + mlp
    ref = x[r] - mx - np.log(np.exp(x[r] - mx).sum())
    keep = ref > -16
    assert np.abs(lp[keep] - ref[keep]).max() <= 16 / 65535  # ±scale/2 plus float32 rounding


def test_round_trip_scores_against_the_original(tmp_path):
    # logits within 16 nats of each row's top but for one row: the quantisation keeps ~1e-4 nats
    logits, tokens = _data(n_chunk=4, n_ctx=32, vocab=64, seed=1, spread=1.5)
    p = tmp_path / "base.kld"
    write_kld_base(str(p), logits, tokens, 32)
    src = KldBaseSource(str(p))
    assert src.shape == (4 * 15, 64)
    assert np.array_equal(src.tokens, tokens.reshape(4, 32)[:, 17:].reshape(-1))
    src.close()
    orig = _scored(logits, 4, 32)
    cand = orig + 0.3 * np.random.default_rng(2).standard_normal(orig.shape).astype(np.float32)
    res_file = ld.score(str(p), cand, chunk_rows=7)
    res_orig = ld.score(orig, cand, tokens=tokens.reshape(4, 32)[:, 17:].reshape(-1))
    # the quantisation's effect: ≤ ~1e-4 nats per log-probability, so KL moves by about that
    np.testing.assert_allclose(res_file.scores["kl"], res_orig.scores["kl"], atol=5e-4)
    t1, t2 = res_file.summary.tokens, res_orig.summary.tokens
    assert t1.count == t2.count == 60
    assert t1.ppl_candidate == t2.ppl_candidate
    # per-row base NLL read back: within ~1e-4 nats of the truth where the token is within 16 nats
    # of the row's top; capped at the floor (−min_log_prob, as llama.cpp reads it) where it is not
    src = KldBaseSource(str(p))
    lp = np.concatenate(list(src.chunks(11))).astype(np.float64)
    src.close()
    t = tokens.reshape(4, 32)[:, 17:].reshape(-1)
    r = np.arange(len(t))
    m = lp.max(1, keepdims=True)
    nll_file = (m[:, 0] + np.log(np.exp(lp - m).sum(1))) - lp[r, t]
    x = orig.astype(np.float64)
    mx = x.max(1)
    lse = mx + np.log(np.exp(x - mx[:, None]).sum(1))
    nll_true = lse - x[r, t]
    near = x[r, t] > mx - 16
    assert near.sum() >= 55 and (~near).sum() >= 1  # the outlier row
    assert np.abs(nll_file[near] - nll_true[near]).max() < 2e-4
    floor = np.maximum(x.min(1), mx - 16) - lse
    assert np.abs(nll_file[~near] + floor[~near]).max() < 2e-4 and (nll_file[~near] < nll_true[~near]).all()
    assert t1.ppl_base == pytest.approx(np.exp(nll_file.mean()), rel=1e-9)


def test_rows_per_scored_position_and_cli(tmp_path, capsys):
    logits, tokens = _data(n_chunk=2, n_ctx=10, vocab=12, seed=3)
    np.save(tmp_path / "l.npy", _scored(logits, 2, 10))
    np.save(tmp_path / "t.npy", tokens)
    rc = main(["base", str(tmp_path / "l.npy"), str(tmp_path / "t.npy"), "--n-ctx", "10", "-o", str(tmp_path / "b.kld")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    write_kld_base(str(tmp_path / "c.kld"), logits, tokens, 10)
    assert (tmp_path / "b.kld").read_bytes() == (tmp_path / "c.kld").read_bytes()
    np.save(tmp_path / "cand.npy", _scored(logits, 2, 10))
    rc = main(["score", str(tmp_path / "b.kld"), str(tmp_path / "cand.npy"), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err and '"tokens"' in out


def test_bad_files(tmp_path):
    p = tmp_path / "x.kld"
    p.write_bytes(b"_logitz_" + b"\0" * 20)
    with pytest.raises(ValueError, match="x.kld.*magic"):
        ld.score(str(p), np.zeros((1, 2), np.float32))
    logits, tokens = _data()
    write_kld_base(str(p), logits, tokens, 16)
    p.write_bytes(p.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"x.kld: expected \d+ bytes .* the file has"):
        KldBaseSource(str(p))
    with pytest.raises(ValueError, match="whole chunks of n_ctx=16"):
        write_kld_base(str(p), logits, tokens[:-1], 16)
