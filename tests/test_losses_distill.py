"""kd_loss and rdrop_loss against PyTorch formulas (float64 autograd), bert4keras' multilabel CE,
Hinton's high-temperature limit, and central differences for both inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import logitdiv as ld
from _losses_ref import assert_grad_matches, b4k_multilabel_soft

RNG = np.random.default_rng(11)


def torch_kd(s, t, y, T, alpha, t2=True, eps=0.0, ignore_index=-100):
    """(1−α)·F.cross_entropy + α·T²·F.kl_div per row, rows labelled ignore_index dropped whole."""
    st = torch.tensor(s, requires_grad=True)
    tt = torch.tensor(t, requires_grad=True)
    kl = F.kl_div(F.log_softmax(st / T, -1), F.log_softmax(tt / T, -1), log_target=True, reduction="none").sum(-1)
    v = alpha * (T * T if t2 else 1.0) * kl
    if y is not None:
        yt = torch.tensor(y)
        ce = F.cross_entropy(st, yt, label_smoothing=eps, ignore_index=ignore_index, reduction="none")
        v = v + (1 - alpha) * ce
        if not yt.dtype.is_floating_point:
            v = torch.where(yt == ignore_index, torch.zeros_like(v), v)
    v.sum().backward()
    return v.detach().numpy(), st.grad.numpy(), tt.grad.numpy()


@pytest.mark.parametrize("T, alpha, t2, eps", [(1.0, 0.5, True, 0.0), (4.0, 0.9, True, 0.1), (2.5, 0.3, False, 0.0),
                                               (3.0, 1.0, True, 0.0), (2.0, 0.0, True, 0.2)])
def test_kd_matches_torch(T, alpha, t2, eps):
    s = RNG.normal(size=(7, 10)) * 3
    t = RNG.normal(size=(7, 10)) * 3
    y = RNG.integers(0, 10, size=7)
    y[3] = -100
    v, gs, gt = ld.kd_loss(s, t, y, temperature=T, alpha=alpha, t2=t2, label_smoothing=eps, grad=True,
                           grad_teacher=True)
    tv, tgs, tgt = torch_kd(s, t, y, T, alpha, t2, eps)
    np.testing.assert_allclose(v, tv, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gs, tgs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gt, tgt, rtol=1e-12, atol=1e-15)
    assert v[3] == 0 and np.all(gs[3] == 0) and np.all(gt[3] == 0)


def test_kd_without_target_and_with_probabilities():
    s = RNG.normal(size=(5, 6))
    t = RNG.normal(size=(5, 6))
    v, g = ld.kd_loss(s, t, temperature=2.0, alpha=0.4, grad=True)
    tv, tgs, _ = torch_kd(s, t, None, 2.0, 0.4)
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g, tgs, rtol=1e-12, atol=1e-16)
    p = RNG.dirichlet(np.ones(6), size=5)
    v = ld.kd_loss(s, t, p, temperature=2.0, alpha=0.4)
    np.testing.assert_allclose(v, torch_kd(s, t, p, 2.0, 0.4)[0], rtol=1e-13)


def test_kd_mean_counts_rows_that_are_not_ignored():
    s = RNG.normal(size=(6, 5))
    t = RNG.normal(size=(6, 5))
    y = np.array([0, -100, 2, 3, -100, 1])
    rows = ld.kd_loss(s, t, y, temperature=2.0, alpha=0.5)
    assert np.isclose(ld.kd_loss(s, t, y, temperature=2.0, alpha=0.5, reduction="mean"), rows.sum() / 4, rtol=1e-15)


@pytest.mark.parametrize("kw", [
    dict(temperature=2.0, alpha=0.5),
    dict(temperature=0.7, alpha=0.8, t2=False, label_smoothing=0.1),
    dict(temperature=3.0, alpha=0.6, where=np.array([1, 1, 0, 1, 1], bool), reduction="mean"),
])
def test_kd_gradients_match_finite_differences(kw):
    s = RNG.normal(size=(3, 5)) * 2
    t = RNG.normal(size=(3, 5)) * 2
    y = np.array([1, 4, -100])
    kw = dict(kw)
    kw.setdefault("reduction", "sum")
    _, gs, gt = ld.kd_loss(s, t, y, grad=True, grad_teacher=True, **kw)
    assert_grad_matches(lambda x: ld.kd_loss(x, t, y, **kw), s, gs)
    assert_grad_matches(lambda x: ld.kd_loss(s, x, y, **kw), t, gt)


def test_kd_high_temperature_limit():
    # T²·KL(q_T ‖ p_T) → Σ(z − v)²/(2C) for zero-mean logits, and its gradient → (z − v)/C
    C = 12
    z = RNG.normal(size=(4, C))
    v = RNG.normal(size=(4, C))
    z -= z.mean(-1, keepdims=True)
    v -= v.mean(-1, keepdims=True)
    limit = ((z - v) ** 2).sum(-1) / (2 * C)
    prev = None
    for T in (10.0, 100.0, 1000.0):
        val, g = ld.kd_loss(z, v, temperature=T, alpha=1.0, grad=True)
        err = np.max(np.abs(val - limit) / limit)
        assert prev is None or err < prev / 5  # converges like 1/T
        prev = err
    assert err < 2e-3
    np.testing.assert_allclose(g, (z - v) / C, rtol=0, atol=2e-3 * np.abs((z - v) / C).max())
    # before the T² factor the gradient is (z − v)/(C·T²)
    _, g1 = ld.kd_loss(z, v, temperature=1000.0, alpha=1.0, t2=False, grad=True)
    np.testing.assert_allclose(g1 * 1e6, (z - v) / C, atol=2e-3 * np.abs((z - v) / C).max())


def test_kd_errors():
    s = RNG.normal(size=(2, 3))
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        ld.kd_loss(s, s, temperature=1.0, alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        ld.kd_loss(s, s, temperature=-1.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"same shape; got \(2, 3\) and \(2, 4\)"):
        ld.kd_loss(s, RNG.normal(size=(2, 4)), temperature=1.0, alpha=0.5)
    with pytest.raises(ValueError, match="grad_teacher=True needs grad=True"):
        ld.kd_loss(s, s, temperature=1.0, alpha=0.5, grad_teacher=True)
    with pytest.raises(TypeError):
        ld.kd_loss(s, s, temperature=1.0)  # alpha is required


# ----------------------------------------------------------------------------------------------
# R-Drop


def torch_rdrop_softmax(s1, s2, y, alpha, eps=0.0):
    a = torch.tensor(s1, requires_grad=True)
    b = torch.tensor(s2, requires_grad=True)
    yt = torch.tensor(y)
    ce = F.cross_entropy(a, yt, reduction="none", label_smoothing=eps) + F.cross_entropy(b, yt, reduction="none",
                                                                                         label_smoothing=eps)
    la, lb = F.log_softmax(a, -1), F.log_softmax(b, -1)
    kl = (F.kl_div(lb, la, log_target=True, reduction="none").sum(-1)
          + F.kl_div(la, lb, log_target=True, reduction="none").sum(-1))
    v = ce + alpha / 2 * kl
    v.sum().backward()
    return v.detach().numpy(), a.grad.numpy(), b.grad.numpy()


@pytest.mark.parametrize("alpha, eps, soft", [(1.0, 0.0, False), (4.0, 0.1, False), (0.0, 0.0, False), (2.0, 0.0, True)])
def test_rdrop_softmax_matches_torch(alpha, eps, soft):
    s1 = RNG.normal(size=(6, 8)) * 2
    s2 = s1 + RNG.normal(size=(6, 8)) * 0.3
    y = RNG.dirichlet(np.ones(8), size=6) if soft else RNG.integers(0, 8, size=6)
    v, g1, g2 = ld.rdrop_loss(s1, s2, y, alpha=alpha, label_smoothing=eps, grad=True)
    tv, t1, t2 = torch_rdrop_softmax(s1, s2, y, alpha, eps)
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g1, t1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g2, t2, rtol=1e-12, atol=1e-15)


def test_rdrop_sigmoid_is_multilabel_ce_plus_gp_kl():
    s1 = RNG.normal(size=(5, 9)) * 2
    s2 = s1 + RNG.normal(size=(5, 9)) * 0.3
    y = (RNG.uniform(size=(5, 9)) < 0.3).astype(float)
    v = ld.rdrop_loss(s1, s2, y, alpha=3.0, kind="sigmoid")
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    ref = b4k_multilabel_soft(y, s1) + b4k_multilabel_soft(y, s2) + 1.5 * ((sig(s1) - sig(s2)) * (s1 - s2)).sum(-1)
    np.testing.assert_allclose(v, ref, rtol=1e-13)
    np.testing.assert_allclose(v, ld.multilabel_ce(s1, y) + ld.multilabel_ce(s2, y) + 1.5 * ld.gp_kl(s1, s2),
                               rtol=1e-14)


@pytest.mark.parametrize("kind, kw", [
    ("softmax", dict(alpha=2.0)),
    ("softmax", dict(alpha=1.0, label_smoothing=0.2, reduction="mean")),
    ("softmax", dict(alpha=1.5, where=np.array([1, 0, 1, 1, 1], bool))),
    ("sigmoid", dict(alpha=2.0)),
    ("sigmoid", dict(alpha=0.5, where=np.array([1, 0, 1, 1, 1], bool), reduction="batchmean")),
])
def test_rdrop_gradients_match_finite_differences(kind, kw):
    s1 = RNG.normal(size=(3, 5)) * 2
    s2 = RNG.normal(size=(3, 5)) * 2
    y = np.array([0, 3, -100]) if kind == "softmax" else RNG.uniform(size=(3, 5))
    kw = dict(kw)
    kw.setdefault("reduction", "sum")
    _, g1, g2 = ld.rdrop_loss(s1, s2, y, kind=kind, grad=True, **kw)
    assert_grad_matches(lambda x: ld.rdrop_loss(x, s2, y, kind=kind, **kw), s1, g1)
    assert_grad_matches(lambda x: ld.rdrop_loss(s1, x, y, kind=kind, **kw), s2, g2)


def test_rdrop_ignores_rows_whole_and_reports_errors():
    s1 = RNG.normal(size=(4, 5))
    s2 = RNG.normal(size=(4, 5))
    y = np.array([0, -100, 2, 3])
    v, g1, g2 = ld.rdrop_loss(s1, s2, y, alpha=1.0, grad=True)
    assert v[1] == 0 and np.all(g1[1] == 0) and np.all(g2[1] == 0)
    assert np.isclose(ld.rdrop_loss(s1, s2, y, alpha=1.0, reduction="mean"), v.sum() / 3, rtol=1e-15)
    with pytest.raises(ValueError, match=r"logits' shape \(4, 5\); got shape \(4,\)"):
        ld.rdrop_loss(s1, s2, y, alpha=1.0, kind="sigmoid")
    with pytest.raises(ValueError, match="label_smoothing applies to the softmax kind only"):
        ld.rdrop_loss(s1, s2, np.zeros((4, 5)), alpha=1.0, kind="sigmoid", label_smoothing=0.1)
    with pytest.raises(ValueError, match="alpha must be finite and ≥ 0"):
        ld.rdrop_loss(s1, s2, y, alpha=-1.0)
    with pytest.raises(ValueError, match="kind must be"):
        ld.rdrop_loss(s1, s2, y, alpha=1.0, kind="tanh")
    with pytest.raises(ValueError, match="row 3 is 7"):
        ld.rdrop_loss(s1, s2, np.array([0, 1, 2, 7]), alpha=1.0)
