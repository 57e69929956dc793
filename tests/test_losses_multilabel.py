"""multilabel_ce, sparse_multilabel_ce and globalpointer_ce against float64 NumPy transcriptions of
bert4keras' formulas (and GPLinker's loss), mpmath, and central differences."""

import numpy as np
import pytest

import logitdiv as ld
from _losses_ref import (
    assert_grad_matches,
    b4k_global_pointer_ner,
    b4k_multilabel_hard,
    b4k_multilabel_soft,
    b4k_sparse,
    gplinker_globalpointer,
    mp_multilabel_sparse,
)

RNG = np.random.default_rng(99)


def hard_labels(rows, cols, p=0.3):
    return (RNG.uniform(size=(rows, cols)) < p).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# dense


def test_dense_hard_labels_match_bert4keras():
    s = RNG.normal(size=(9, 12)) * 4
    y = hard_labels(9, 12)
    y[0] = 0  # no positive
    y[1] = 1  # no negative
    np.testing.assert_allclose(ld.multilabel_ce(s, y), b4k_multilabel_hard(y, s), rtol=1e-13)
    np.testing.assert_allclose(ld.multilabel_ce(s, y), b4k_multilabel_soft(y, s), rtol=1e-13)


def test_dense_soft_labels_match_bert4keras():
    s = RNG.normal(size=(9, 12)) * 4
    y = RNG.uniform(size=(9, 12))
    y[:, :3] = np.round(y[:, :3])
    np.testing.assert_allclose(ld.multilabel_ce(s, y), b4k_multilabel_soft(y, s), rtol=1e-13)


def test_masked_classes_match_bert4keras_minus_inf_masking():
    s = RNG.normal(size=(5, 8))
    y = hard_labels(5, 8)
    keep = np.ones(8, bool)
    keep[[2, 5]] = False
    y[:, ~keep] = 0
    s_inf = np.where(keep, s, -np.inf)
    np.testing.assert_allclose(ld.multilabel_ce(s, y, where=keep), b4k_multilabel_soft(y, s_inf), rtol=1e-13)
    np.testing.assert_array_equal(ld.multilabel_ce(s, y, where=keep), ld.multilabel_ce(s_inf, y))


def test_tiny_losses_keep_their_digits_where_the_bert4keras_form_loses_them():
    # a confident, correct model: positives at +25..35, negatives at −25..−35
    cols = 20
    pos = [1, 7, 8]
    s = -RNG.uniform(25, 35, size=cols)
    s[pos] = RNG.uniform(25, 35, size=3)
    y = np.zeros(cols)
    y[pos] = 1
    ref = float(mp_multilabel_sparse(s, pos))
    ours = ld.multilabel_ce(s[None], y[None])[0]
    b4k = b4k_multilabel_hard(y[None], s[None])[0]
    assert abs(ours - ref) <= 2e-15 * ref
    assert abs(b4k - ref) > 1e-6 * ref  # log(1 + tiny) formed as lse(.. ∪ {0}): ~3e-5 relative here


def test_one_positive_is_softmax_ce_against_the_negatives_and_the_threshold():
    # log(1 + Σ_neg e^{s_i}) + log(1 + e^{−s_j}): the softmax CE of the threshold class 0 against the
    # negatives, plus the softmax CE of class j against the threshold 0.
    s = RNG.normal(size=(6, 7)) * 2
    j = RNG.integers(0, 7, size=6)
    y = np.zeros((6, 7))
    y[np.arange(6), j] = 1
    v = ld.multilabel_ce(s, y)
    for r in range(6):
        negs = np.delete(s[r], j[r])
        neg_term = ld.softmax_ce(np.concatenate([[0.0], negs])[None], np.array([0]))[0]
        pos_term = ld.softmax_ce(np.array([[s[r, j[r]], 0.0]]), np.array([0]))[0]
        assert np.isclose(v[r], neg_term + pos_term, rtol=1e-14)
        # and as 7359 derives it: the CE of j against the negatives ∪ {0}, plus the cross term
        ce_j = ld.softmax_ce(np.concatenate([[s[r, j[r]]], negs, [0.0]])[None], np.array([0]))[0]
        assert np.isclose(v[r], np.log(np.exp(ce_j) + np.exp(negs).sum()), rtol=1e-13)


@pytest.mark.parametrize("case", ["hard", "soft", "masked", "mean"])
def test_dense_gradient_matches_finite_differences(case):
    s = RNG.normal(size=(3, 6)) * 2
    y = RNG.uniform(size=(3, 6)) if case == "soft" else hard_labels(3, 6, 0.4)
    kw = {"hard": {}, "soft": {}, "masked": {"where": np.array([1, 0, 1, 1, 0, 1], bool)},
          "mean": {"reduction": "mean"}}[case]
    if case == "masked":
        y[:, [1, 4]] = 0
    kw.setdefault("reduction", "sum")
    _, g = ld.multilabel_ce(s, y, grad=True, **kw)
    assert_grad_matches(lambda x: ld.multilabel_ce(x, y, **kw), s, g)


def test_dense_conventions_and_errors():
    s = np.array([[0.5, -np.inf, 1.0], [0.5, -np.inf, 1.0], [np.nan, 0.0, 1.0]])
    y = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    v, g = ld.multilabel_ce(s, y, grad=True)
    assert np.isclose(v[0], b4k_multilabel_soft(y[:1], s[:1])[0], rtol=1e-15) and g[0, 1] == 0
    assert v[1] == np.inf and np.all(np.isnan(g[1]))  # a positive on an absent class
    assert np.isnan(v[2]) and np.all(np.isnan(g[2]))
    y_bad = y.copy()
    y_bad[1, 2] = -0.25
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]; got -0.25 at row 1, class 2"):
        ld.multilabel_ce(s, y_bad)
    with pytest.raises(ValueError, match=r"logits' shape \(3, 3\); got shape \(3,\)"):
        ld.multilabel_ce(s, y[0])


# ----------------------------------------------------------------------------------------------
# sparse


def random_positives(rows, cols, kmax, pad=-1):
    pos = np.full((rows, kmax), pad, dtype=np.int64)
    for r in range(rows):
        k = RNG.integers(0, kmax + 1)
        pos[r, :k] = RNG.choice(cols, size=k, replace=False)
        RNG.shuffle(pos[r])
    return pos


def dense_of(pos, cols, pad=-1):
    y = np.zeros((pos.shape[0], cols))
    for r, row in enumerate(pos):
        y[r, row[row != pad]] = 1
    return y


def test_sparse_equals_dense():
    s = RNG.normal(size=(10, 15)) * 3
    pos = random_positives(10, 15, 4)
    v, g = ld.sparse_multilabel_ce(s, pos, grad=True)
    dv, dg = ld.multilabel_ce(s, dense_of(pos, 15), grad=True)
    np.testing.assert_allclose(v, dv, rtol=1e-14)
    np.testing.assert_allclose(g, dg, rtol=1e-13, atol=1e-300)
    # another padding value, a class mask, and leading axes
    pos7 = np.where(pos == -1, 99, pos)
    np.testing.assert_allclose(ld.sparse_multilabel_ce(s, pos7, pad=99), v, rtol=0)
    keep = np.ones(15, bool)
    keep[[3, 4]] = False
    pos_k = np.where(np.isin(pos, [3, 4]), -1, pos)
    np.testing.assert_allclose(ld.sparse_multilabel_ce(s, pos_k, where=keep),
                               ld.multilabel_ce(s, dense_of(pos_k, 15), where=keep), rtol=1e-14)
    s3 = s.reshape(2, 5, 15)
    np.testing.assert_allclose(ld.sparse_multilabel_ce(s3, pos.reshape(2, 5, 4)), v.reshape(2, 5), rtol=0)


def test_sparse_matches_bert4keras_in_ordinary_rows():
    s = RNG.normal(size=(8, 10)) * 2
    pos = np.stack([RNG.choice(10, size=3, replace=False) for _ in range(8)])
    np.testing.assert_allclose(ld.sparse_multilabel_ce(s, pos), b4k_sparse(pos, s), rtol=1e-12)


@pytest.mark.parametrize("gap, b4k_min_error", [(16.0, 1e-11), (25.0, 1.0)])
def test_sparse_where_positives_hold_almost_all_the_mass(gap, b4k_min_error):
    # Positives far above the negatives: Σ_all − Σ_pos cancels. bert4keras forms
    # log(1 − e^{lse(pos) − lse(all)}), which loses digits (gap 16: ~1e-10 relative) or hits its 1e-7
    # clip (gap 25) and then returns lse(all) + log(1e-7) for the negative term instead of
    # log(1 + Σ_neg e^{s}) (errors of 100 % and more). The direct sum keeps every digit.
    cols = 30
    s = RNG.normal(size=(4, cols))
    pos = np.stack([RNG.choice(cols, size=5, replace=False) for _ in range(4)])
    for r in range(4):
        s[r, pos[r]] += gap
    ours = ld.sparse_multilabel_ce(s, pos)
    b4k = b4k_sparse(pos, s)
    ref = np.array([float(mp_multilabel_sparse(s[r], pos[r])) for r in range(4)])
    assert np.all(np.abs(ours - ref) <= 2e-15 * ref), np.abs(ours - ref) / ref
    assert np.max(np.abs(b4k - ref) / ref) > b4k_min_error


@pytest.mark.parametrize("kw", [{}, {"where": np.array([1, 1, 0, 1, 1, 1, 1], bool)}, {"reduction": "mean"}])
def test_sparse_gradient_matches_finite_differences(kw):
    s = RNG.normal(size=(3, 7)) * 2
    pos = np.array([[0, 4, -1], [-1, -1, -1], [6, 1, 3]])
    kw = dict(kw)
    kw.setdefault("reduction", "sum")
    _, g = ld.sparse_multilabel_ce(s, pos, grad=True, **kw)
    assert_grad_matches(lambda x: ld.sparse_multilabel_ce(x, pos, **kw), s, g)


def test_sparse_errors():
    s = RNG.normal(size=(3, 6))
    with pytest.raises(ValueError, match="class 4 is listed twice among the positives of row 1"):
        ld.sparse_multilabel_ce(s, np.array([[0, -1], [4, 4], [1, 2]]))
    with pytest.raises(ValueError, match=r"positive class 6 at row 2 is out of range: class indices must lie in \[0, 6\)"):
        ld.sparse_multilabel_ce(s, np.array([[0, -1], [4, 3], [6, 2]]))
    with pytest.raises(ValueError, match="positive class -2 at row 0"):
        ld.sparse_multilabel_ce(s, np.array([[-2, -1], [4, 3], [1, 2]]))
    with pytest.raises(TypeError, match="integer class indices"):
        ld.sparse_multilabel_ce(s, np.array([[0.0, 1.0]] * 3))
    with pytest.raises(ValueError, match=r"must have shape \(3,\) \+ \(K,\)"):
        ld.sparse_multilabel_ce(s, np.array([[0, 1]] * 2))
    # the lowest bad row is reported, whatever the threads do
    bad = np.tile(np.array([[1, 1]]), (5000, 1))
    with pytest.raises(ValueError, match="positives of row 0"):
        ld.sparse_multilabel_ce(RNG.normal(size=(5000, 40)), bad)


# ----------------------------------------------------------------------------------------------
# GlobalPointer


def gp_case(b=2, heads=3, length=7, k=3):
    s = RNG.normal(size=(b, heads, length, length)) * 3
    lengths = [length, length - 2][:b] + [length] * max(0, b - 2)
    mask = np.zeros((b, length), bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    spans = np.full((b, heads, k, 2), -1, dtype=np.int64)
    for i in range(b):
        for h in range(heads):
            n = RNG.integers(0, k + 1)
            chosen = set()
            while len(chosen) < n:
                a, e = sorted(RNG.integers(0, lengths[i], size=2))
                chosen.add((a, e))
            for m, span in enumerate(chosen):
                spans[i, h, m] = span
    return s, spans, mask


def masked_dense(s, mask):
    """The logits with −inf on the spans i > j and on those touching a masked token."""
    length = s.shape[-1]
    upper = np.triu(np.ones((length, length), bool))
    keep = upper[None, None] & mask[:, None, :, None] & mask[:, None, None, :]
    return np.where(keep, s, -np.inf)


def dense_spans(spans, shape):
    y = np.zeros(shape)
    b, h, _, _ = shape
    for i in range(b):
        for j in range(h):
            for a, e in spans[i, j]:
                if a >= 0:
                    y[i, j, a, e] = 1
    return y


def test_globalpointer_equals_dense_multilabel_on_masked_logits():
    s, spans, mask = gp_case()
    b, h, length, _ = s.shape
    v, g = ld.globalpointer_ce(s, spans, mask=mask, grad=True)
    md = masked_dense(s, mask).reshape(b, h, -1)
    y = dense_spans(spans, s.shape).reshape(b, h, -1)
    dv, dg = ld.multilabel_ce(md, y, grad=True)
    assert v.shape == (b, h)
    np.testing.assert_allclose(v, dv, rtol=1e-14)
    np.testing.assert_allclose(g.reshape(b, h, -1), dg, rtol=1e-13, atol=1e-300)
    assert np.all(g[masked_dense(s, mask) == -np.inf] == 0)
    # flat indices give the same
    flat = np.where(spans[..., 0] >= 0, spans[..., 0] * length + spans[..., 1], -1)
    np.testing.assert_array_equal(ld.globalpointer_ce(s, flat, mask=mask), v)
    # no mask: only the upper triangle
    full = np.ones((b, length), bool)
    np.testing.assert_allclose(ld.globalpointer_ce(s, spans),
                               ld.multilabel_ce(masked_dense(s, full).reshape(b, h, -1), y), rtol=1e-14)


def test_globalpointer_reductions_match_bert4keras_ner_and_gplinker():
    s, spans, mask = gp_case(b=3, heads=2, length=6)
    b, h, length, _ = s.shape
    md = masked_dense(s, mask)
    y = dense_spans(spans, s.shape)
    ner = b4k_global_pointer_ner(y, md)
    assert np.isclose(ld.globalpointer_ce(s, spans, mask=mask, reduction="batchmean"), ner, rtol=1e-14)
    # bert4keras' older ±1e12 masking gives the same
    md_big = np.where(md == -np.inf, -1e12, md)
    assert np.isclose(ner, np.mean(b4k_multilabel_hard(y.reshape(b * h, -1), md_big.reshape(b * h, -1))), rtol=1e-13)
    # GPLinker: spans padded with (0, 0), class 0 dropped (mask_zero=True). Here: pad=0 and the
    # logit of span (0, 0) made absent.
    spans0 = np.where(spans == -1, 0, spans)
    s0 = s.copy()
    s0[:, :, 0, 0] = -np.inf
    ours = ld.globalpointer_ce(s0, spans0, mask=mask, pad=0, reduction="sum_heads_mean_batch")
    ref = gplinker_globalpointer(spans0, masked_dense(s0, mask))
    assert np.isclose(ours, ref, rtol=1e-12)
    assert np.isclose(ours, ld.globalpointer_ce(s0, spans0, mask=mask, pad=0, reduction="sum") / b, rtol=1e-15)


@pytest.mark.parametrize("reduction", ["sum", "mean", "batchmean", "sum_heads_mean_batch"])
def test_globalpointer_gradient_matches_finite_differences(reduction):
    s, spans, mask = gp_case(b=2, heads=2, length=4, k=2)
    _, g = ld.globalpointer_ce(s, spans, mask=mask, reduction=reduction, grad=True)
    assert_grad_matches(lambda x: ld.globalpointer_ce(x, spans, mask=mask, reduction=reduction), s, g)


def test_globalpointer_mean_skips_fully_masked_rows():
    s, spans, mask = gp_case(b=2, heads=2, length=5)
    mask[1] = False
    spans[1] = -1
    v = ld.globalpointer_ce(s, spans, mask=mask)
    assert np.all(v[1] == 0)
    assert np.isclose(ld.globalpointer_ce(s, spans, mask=mask, reduction="mean"), v[0].mean(), rtol=1e-15)
    assert np.isclose(ld.globalpointer_ce(s, spans, mask=mask, reduction="batchmean"), v.sum() / 4, rtol=1e-15)


def test_globalpointer_float16_needs_no_big_constants():
    # −1e12 masking overflows float16 (to −inf, and then 0·inf = NaN in (1 − 2y)·s tricks); the
    # kernel masks inside and reads float16 directly
    s, spans, mask = gp_case(b=2, heads=2, length=8)
    s16 = s.astype(np.float16)
    v16, g16 = ld.globalpointer_ce(s16, spans, mask=mask, grad=True)
    v64, g64 = ld.globalpointer_ce(s16.astype(np.float64), spans, mask=mask, grad=True)
    assert v16.dtype == np.float32 and g16.dtype == np.float16
    np.testing.assert_allclose(v16, v64, rtol=1e-6)
    np.testing.assert_allclose(g16.astype(np.float64), g64, rtol=2e-3, atol=1e-7)
    with np.errstate(over="ignore"):
        assert np.float16(-1e12) == -np.inf


def test_globalpointer_masks_and_errors():
    s, spans, mask = gp_case(b=2, heads=2, length=5)
    v = ld.globalpointer_ce(s, spans, mask=mask)
    np.testing.assert_array_equal(ld.globalpointer_ce(s, spans, mask=mask.astype(np.int64)), v)
    np.testing.assert_array_equal(ld.globalpointer_ce(s, spans, mask=mask.astype(np.float32)), v)
    with pytest.raises(ValueError, match="0/1"):
        ld.globalpointer_ce(s, spans, mask=mask * 2)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 5\)"):
        ld.globalpointer_ce(s, spans, mask=mask[:, :4])
    bad = spans.copy()
    bad[1, 0, 0] = (2, 5)
    with pytest.raises(ValueError, match=r"span \(2, 5\) of batch 1, head 0 is out of range"):
        ld.globalpointer_ce(s, bad)
    dup = np.full_like(spans, -1)
    dup[0, 1, :2] = (1, 3)
    with pytest.raises(ValueError, match=r"span \(1, 3\) is listed twice among the positives of batch 0, head 1"):
        ld.globalpointer_ce(s, dup)
    # a positive below the diagonal or on a masked token is an absent class: +inf, NaN gradient
    low = np.full_like(spans, -1)
    low[0, 0, 0] = (3, 1)
    v, g = ld.globalpointer_ce(s, low, grad=True)
    assert v[0, 0] == np.inf and np.all(np.isnan(g[0, 0])) and np.all(np.isfinite(v[1]))
    with pytest.raises(ValueError, match=r"\(B, heads, L, L\)"):
        ld.globalpointer_ce(s[..., :4], spans)
    with pytest.raises(ValueError, match="sum_heads_mean_batch"):
        ld.globalpointer_ce(s, spans, reduction="avg")
    with pytest.raises(ValueError, match=r"\(2, 2, K, 2\)"):
        ld.globalpointer_ce(s, spans[:1])
