"""logitdiv.torch for the losses: gradcheck in float64 for every loss and option, values and
gradients equal to plain-torch formulas (F.cross_entropy, F.binary_cross_entropy_with_logits,
F.kl_div, float64 transcriptions of Su's multilabel CE), the thresholded γ-CE against its
documented surrogate gradient, float16/bfloat16 inputs, zero-copy reads, the modules against
torch's, clear errors, and an R-Drop training loop that matches the plain-torch loss step by step."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import logitdiv as ld
import logitdiv.torch as ldt

F64 = torch.float64
INF = float("inf")
REDUCTIONS = ("none", "sum", "mean", "batchmean")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# plain-torch references (float64), one value per row


def t_multilabel(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Su's multilabel CE, soft-label form: lse([s + log(1−y)] ∪ {0}) + lse([−s + log y] ∪ {0});
    a −inf logit (absent class) drops out of both sums."""
    zeros = torch.zeros_like(s[..., :1])
    neg = torch.where(y < 1, s + torch.log1p(-y), -INF)
    pos = torch.where(y > 0, -s + torch.log(y), -INF)
    return torch.logsumexp(torch.cat([neg, zeros], -1), -1) + torch.logsumexp(torch.cat([pos, zeros], -1), -1)


def t_sparse_dense(positives: torch.Tensor, c: int, pad: int = -1) -> torch.Tensor:
    y = torch.zeros(positives.shape[:-1] + (c + 1,), dtype=F64)
    idx = torch.where(positives == pad, c, positives)
    y.scatter_(-1, idx, 1.0)
    return y[..., :c]


def t_gp_masked(s: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """GlobalPointer logits (B, H, L, L) with the spans i > j and those touching padding at −inf."""
    b, _, length, _ = s.shape
    i = torch.arange(length)
    valid = (i[:, None] <= i[None, :]).expand(b, 1, length, length)
    if mask is not None:
        tok = mask.bool()
        valid = valid & tok[:, None, :, None] & tok[:, None, None, :]
    return s.masked_fill(~valid, -INF)


def t_globalpointer(s, spans, mask):
    b, h, length, _ = s.shape
    flat = torch.where(spans[..., 0] < 0, -1, spans[..., 0] * length + spans[..., 1])
    y = t_sparse_dense(flat, length * length)
    return t_multilabel(t_gp_masked(s, mask).reshape(b, h, length * length), y)


def t_ce(s, y, eps=0.0, ignore_index=-100, temperature=1.0):
    return F.cross_entropy((s / temperature).movedim(-1, 1) if s.ndim > 2 else s / temperature, y,
                           label_smoothing=eps, ignore_index=ignore_index, reduction="none")


def t_kl(a, b, temperature=1.0):
    """KL(softmax(a/T) ‖ softmax(b/T)) per row, as F.kl_div(log q, log p, log_target=True)."""
    return F.kl_div(F.log_softmax(b / temperature, -1), F.log_softmax(a / temperature, -1),
                    log_target=True, reduction="none").sum(-1)


def t_gamma(s, y, gamma, ignore_index=-100):
    keep = y != ignore_index
    py = F.softmax(s, -1).gather(-1, torch.where(keep, y, 0)[..., None])[..., 0]
    return torch.where(keep, -torch.log(gamma + (1 - gamma) * py) / (1 - gamma), 0.0)


def t_kd(s, t, y, temperature, alpha, t2=True, eps=0.0, ignore_index=-100):
    v = alpha * (temperature ** 2 if t2 else 1.0) * t_kl(t, s, temperature)
    if y is None:
        return v
    v = (1 - alpha) * t_ce(s, y, eps, ignore_index) + v
    return torch.where(y == ignore_index, 0.0, v) if not y.is_floating_point() else v


def t_rdrop_softmax(s1, s2, y, alpha, eps=0.0, ignore_index=-100):
    v = t_ce(s1, y, eps, ignore_index) + t_ce(s2, y, eps, ignore_index) + alpha / 2 * (t_kl(s1, s2) + t_kl(s2, s1))
    return torch.where(y == ignore_index, 0.0, v) if not y.is_floating_point() else v


def t_rdrop_sigmoid(s1, s2, y, alpha):
    gp_kl = ((torch.sigmoid(s1) - torch.sigmoid(s2)) * (s1 - s2)).sum(-1)
    return t_multilabel(s1, y) + t_multilabel(s2, y) + alpha / 2 * gp_kl


def reduce(values: torch.Tensor, reduction: str, counts: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The reductions of logitdiv's API applied to per-row values ("mean" over the rows that count)."""
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "batchmean":
        return values.sum() / values.numel()
    if reduction == "sum_heads_mean_batch":
        return values.sum() / values.shape[0]
    n = values.numel() if counts is None else int(counts.sum())
    return values.sum() / n


# ----------------------------------------------------------------------------------------------
# the cases: every loss and option, on small float64 inputs

ROWS, C = 4, 7
_g = gen(11)
Y_IDX = torch.tensor([0, 3, 6, 2])
Y_PROB = torch.softmax(torch.randn(ROWS, C, generator=_g, dtype=F64), -1)
Y_BIN = (torch.rand(ROWS, C, generator=_g) > 0.5).to(F64)
Y_SOFT = torch.rand(ROWS, C, generator=_g, dtype=F64)
Y_SOFT[0, 0], Y_SOFT[1, 1] = 0.0, 1.0
TEACHER = torch.randn(ROWS, C, generator=_g, dtype=F64) * 2
CLASS_MASK = torch.tensor([True, True, True, True, True, False, True])  # no label on class 5
POS_WEIGHT = torch.linspace(0.5, 3.0, C, dtype=F64)
WEIGHTS = torch.tensor([1.0, 0.0, 2.0, 0.5, 1.0, 1.5, 1.0], dtype=F64)
POSITIVES = torch.tensor([[0, 4, -1], [-1, -1, -1], [6, 1, 2], [3, -1, -1]])
IGNORED = torch.tensor([True, False, True, True])  # rows that count when index 3 is ignored
GP_SHAPE = (2, 3, 4, 4)
GP_MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
GP_SPANS = torch.tensor([  # (B, heads, K=2, 2), padding (-1, -1), all on valid spans
    [[[0, 1], [2, 2]], [[-1, -1], [-1, -1]], [[1, 2], [-1, -1]]],
    [[[0, 3], [1, 1]], [[3, 3], [-1, -1]], [[-1, -1], [-1, -1]]],
])


class Case(NamedTuple):
    n: int                                   # differentiable logits (1 or 2)
    ld: Callable[..., torch.Tensor]          # (*logits, reduction=) -> value
    ref: Callable[..., torch.Tensor]         # (*logits) -> per-row values, plain torch
    counts: Optional[torch.Tensor] = None    # rows that "mean" counts
    shape: Tuple[int, ...] = (ROWS, C)
    reductions: Tuple[str, ...] = REDUCTIONS


CASES = {
    "softmax_ce": Case(1, lambda s, **k: ldt.softmax_ce(s, Y_IDX, **k), lambda s: t_ce(s, Y_IDX)),
    "softmax_ce_smoothing_ignore_index": Case(
        1, lambda s, **k: ldt.softmax_ce(s, Y_IDX, label_smoothing=0.2, ignore_index=3, **k),
        lambda s: t_ce(s, Y_IDX, 0.2, 3), IGNORED),
    "softmax_ce_probabilities_temperature": Case(
        1, lambda s, **k: ldt.softmax_ce(s, Y_PROB, label_smoothing=0.1, temperature=1.7, **k),
        lambda s: t_ce(s, Y_PROB, 0.1, temperature=1.7)),
    "softmax_ce_class_mask": Case(
        1, lambda s, **k: ldt.softmax_ce(s, Y_IDX, where=CLASS_MASK, **k),
        lambda s: t_ce(s.masked_fill(~CLASS_MASK, -INF), Y_IDX)),
    "softmax_ce_leading_axes": Case(
        1, lambda s, **k: ldt.softmax_ce(s, Y_IDX.reshape(2, 2), **k), lambda s: t_ce(s, Y_IDX.reshape(2, 2)),
        shape=(2, 2, C)),
    "bce": Case(1, lambda s, **k: ldt.bce(s, Y_SOFT, **k),
                lambda s: F.binary_cross_entropy_with_logits(s, Y_SOFT, reduction="none").sum(-1)),
    "bce_pos_weight_weights": Case(
        1, lambda s, **k: ldt.bce(s, Y_BIN, pos_weight=POS_WEIGHT, weights=WEIGHTS, **k),
        lambda s: F.binary_cross_entropy_with_logits(s, Y_BIN, weight=WEIGHTS, pos_weight=POS_WEIGHT,
                                                     reduction="none").sum(-1)),
    "multilabel_ce": Case(1, lambda s, **k: ldt.multilabel_ce(s, Y_BIN, **k), lambda s: t_multilabel(s, Y_BIN)),
    "multilabel_ce_soft": Case(1, lambda s, **k: ldt.multilabel_ce(s, Y_SOFT, **k), lambda s: t_multilabel(s, Y_SOFT)),
    "sparse_multilabel_ce": Case(
        1, lambda s, **k: ldt.sparse_multilabel_ce(s, POSITIVES, **k),
        lambda s: t_multilabel(s, t_sparse_dense(POSITIVES, C))),
    "globalpointer_ce_token_mask": Case(
        1, lambda s, **k: ldt.globalpointer_ce(s, GP_SPANS, mask=GP_MASK, **k),
        lambda s: t_globalpointer(s, GP_SPANS, GP_MASK), shape=GP_SHAPE,
        reductions=REDUCTIONS + ("sum_heads_mean_batch",)),
    "gamma_ce": Case(1, lambda s, **k: ldt.gamma_ce(s, Y_IDX, gamma=0.3, ignore_index=3, **k),
                     lambda s: t_gamma(s, Y_IDX, 0.3, 3), IGNORED),
    "kd_loss_labels": Case(
        1, lambda s, **k: ldt.kd_loss(s, TEACHER, Y_IDX, temperature=2.0, alpha=0.7, **k),
        lambda s: t_kd(s, TEACHER, Y_IDX, 2.0, 0.7)),
    "kd_loss_no_labels": Case(
        1, lambda s, **k: ldt.kd_loss(s, TEACHER, temperature=3.0, alpha=0.5, **k),
        lambda s: t_kd(s, TEACHER, None, 3.0, 0.5)),
    "kd_loss_no_t2_probabilities": Case(
        1, lambda s, **k: ldt.kd_loss(s, TEACHER, Y_PROB, temperature=1.5, alpha=0.4, t2=False, **k),
        lambda s: t_kd(s, TEACHER, Y_PROB, 1.5, 0.4, t2=False)),
    "kd_loss_teacher_grad": Case(
        2, lambda s, t, **k: ldt.kd_loss(s, t, Y_IDX, temperature=2.5, alpha=0.6, label_smoothing=0.1,
                                         ignore_index=3, **k),
        lambda s, t: t_kd(s, t, Y_IDX, 2.5, 0.6, eps=0.1, ignore_index=3), IGNORED),
    "rdrop_softmax": Case(
        2, lambda a, b, **k: ldt.rdrop_loss(a, b, Y_IDX, alpha=4.0, label_smoothing=0.1, ignore_index=3, **k),
        lambda a, b: t_rdrop_softmax(a, b, Y_IDX, 4.0, 0.1, 3), IGNORED),
    "rdrop_softmax_probabilities": Case(
        2, lambda a, b, **k: ldt.rdrop_loss(a, b, Y_PROB, alpha=1.0, **k),
        lambda a, b: t_rdrop_softmax(a, b, Y_PROB, 1.0)),
    "rdrop_sigmoid": Case(
        2, lambda a, b, **k: ldt.rdrop_loss(a, b, Y_BIN, alpha=2.0, kind="sigmoid", **k),
        lambda a, b: t_rdrop_sigmoid(a, b, Y_BIN, 2.0)),
}

CASE_REDUCTIONS = [(name, r) for name, case in CASES.items() for r in case.reductions]


def logits(case: Case, seed: int = 0, dtype=F64):
    g = gen(seed)
    return tuple((torch.randn(case.shape, generator=g, dtype=F64) * 2).to(dtype).requires_grad_()
                 for _ in range(case.n))


# ----------------------------------------------------------------------------------------------
# gradients, values


@pytest.mark.parametrize("name,reduction", CASE_REDUCTIONS)
def test_gradcheck(name, reduction):
    case = CASES[name]
    assert gradcheck(lambda *xs: case.ld(*xs, reduction=reduction), logits(case))


@pytest.mark.parametrize("name,reduction", CASE_REDUCTIONS)
def test_values_equal_plain_torch(name, reduction):
    case = CASES[name]
    xs = logits(case, seed=1)
    got = case.ld(*xs, reduction=reduction)
    want = reduce(case.ref(*(x.detach() for x in xs)), reduction, case.counts)
    assert got.dtype == F64 and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", CASES)
def test_gradients_equal_plain_torch_autograd(name):
    case = CASES[name]
    xs = logits(case, seed=2)
    weights = torch.linspace(-1.0, 2.0, math.prod(case.shape[:-1]) if name != "globalpointer_ce_token_mask"
                             else 6, dtype=F64)
    # per-row values weighted: exercises the per-row scaling of the gradient in backward
    (case.ld(*xs).reshape(-1) * weights).sum().backward()
    ys = tuple(x.detach().clone().requires_grad_() for x in xs)
    (case.ref(*ys).reshape(-1) * weights).sum().backward()
    for x, y in zip(xs, ys):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("threshold", [0.0, 0.4, 0.9])
def test_gamma_threshold_gradient_is_the_documented_surrogate(threshold, reduction):
    """With a threshold b the value is −max(b, r)·log p_y and the gradient max(b, r)·(p − onehot(y)),
    r = p_y/(γ + (1−γ) p_y) held constant: not the value's derivative, so no gradcheck."""
    gamma = 0.6
    s = (torch.randn(6, C, generator=gen(4), dtype=F64) * 3).requires_grad_()
    y = torch.tensor([0, 1, 2, 3, -100, 6])
    keep = y != -100
    v = ldt.gamma_ce(s, y, gamma=gamma, threshold=threshold, reduction=reduction)
    v.sum().backward()
    p = F.softmax(s.detach(), -1)
    yk = torch.where(keep, y, 0)
    py = p.gather(-1, yk[:, None])[:, 0]
    weight = torch.clamp(py / (gamma + (1 - gamma) * py), min=threshold)
    values = torch.where(keep, -weight * torch.log(py), 0.0)
    grads = torch.where(keep[:, None], weight[:, None] * (p - F.one_hot(yk, C)), 0.0)
    scale = {"none": 1.0, "sum": 1.0, "mean": 1 / int(keep.sum()), "batchmean": 1 / 6}[reduction]
    torch.testing.assert_close(v.detach(), reduce(values, reduction, keep), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(s.grad, grads * scale, rtol=1e-11, atol=1e-14)


def test_gamma_threshold_zero_has_the_gradient_of_gamma_ce():
    s = torch.randn(5, C, generator=gen(5), dtype=F64, requires_grad=True)
    s2 = s.detach().clone().requires_grad_()
    y = torch.tensor([1, 2, 3, 4, 5])
    ldt.gamma_ce(s, y, gamma=0.5, threshold=0.0, reduction="sum").backward()
    ldt.gamma_ce(s2, y, gamma=0.5, reduction="sum").backward()
    torch.testing.assert_close(s.grad, s2.grad, rtol=1e-12, atol=1e-15)


def test_kd_teacher_gets_a_gradient_only_when_it_requires_one():
    s, t = logits(CASES["kd_loss_teacher_grad"], seed=6)
    ldt.kd_loss(s, t.detach(), Y_IDX, temperature=2.0, alpha=0.5, reduction="sum").backward()
    assert s.grad is not None and t.grad is None
    v = ldt.kd_loss(s.detach(), t, temperature=2.0, alpha=0.5, reduction="sum")
    v.backward()
    t2 = t.detach().clone().requires_grad_()
    t_kd(s.detach(), t2, None, 2.0, 0.5).sum().backward()
    torch.testing.assert_close(t.grad, t2.grad, rtol=1e-10, atol=1e-14)


def test_probability_target_is_not_differentiated():
    s = torch.randn(3, 5, dtype=F64, requires_grad=True)
    p = torch.softmax(torch.randn(3, 5, dtype=F64), -1).requires_grad_()
    ldt.softmax_ce(s, p, reduction="sum").backward()
    assert s.grad is not None and p.grad is None


# ----------------------------------------------------------------------------------------------
# dtypes, zero-copy, backward mechanics


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", CASES)
def test_low_precision_inputs(name, dtype):
    case = CASES[name]
    xs = tuple(x.detach().to(dtype).requires_grad_() for x in logits(case, seed=7))
    v = case.ld(*xs, reduction="sum")
    v.backward()
    # values are float32 for half-precision logits; the kd cases' fixed teacher is float64, which
    # makes the common dtype float64
    assert v.dtype == (F64 if name.startswith("kd_loss") and case.n == 1 else torch.float32)
    ys = tuple(x.detach().double().requires_grad_() for x in xs)  # the same rounded inputs, in float64
    want = case.ref(*ys).sum()
    want.backward()
    assert abs(v.item() - want.item()) <= 1e-5 * abs(want.item()) + 1e-6
    eps = {torch.float16: 2 ** -10, torch.bfloat16: 2 ** -7}[dtype]
    for x, y in zip(xs, ys):
        assert x.grad.dtype == dtype
        torch.testing.assert_close(x.grad.double(), y.grad, rtol=2 * eps, atol=2 * eps * y.grad.abs().max().item())


def test_mixed_dtypes_give_each_input_its_own_gradient_dtype():
    s = torch.randn(3, 6, dtype=torch.bfloat16, requires_grad=True)
    t = torch.randn(3, 6, dtype=torch.float32, requires_grad=True)
    ldt.rdrop_loss(s, t, torch.tensor([0, 1, 2]), alpha=1.0, reduction="mean").backward()
    assert s.grad.dtype == torch.bfloat16 and t.grad.dtype == torch.float32


def test_logits_and_gradient_buffers_are_shared_with_the_core(monkeypatch):
    seen = {}
    real = ld.softmax_ce

    def spy(logits, target, **kw):
        seen["logits"] = logits.ctypes.data
        seen["grad"] = kw["grad_out"][0].ctypes.data
        seen["target"] = target
        return real(logits, target, **kw)

    monkeypatch.setattr(ld, "softmax_ce", spy)
    x = torch.randn(8, 5, requires_grad=True)
    sliced = x[::2]  # strided rows are read in place too
    v = ldt.softmax_ce(sliced, torch.tensor([0, 1, 2, 3]), reduction="mean")
    assert seen["logits"] == sliced.data_ptr()
    assert isinstance(seen["target"], np.ndarray) and seen["target"].dtype == np.int64
    grad_buffer = v.grad_fn.grads[0]  # the fused pass's buffer, kept on ctx
    assert seen["grad"] == grad_buffer.data_ptr()
    leaf = torch.randn(4, 5, requires_grad=True)
    v = ldt.softmax_ce(leaf, torch.tensor([0, 1, 2, 3]), reduction="mean")
    buffer = v.grad_fn.grads[0].data_ptr()
    v.backward()  # grad_output is 1: the buffer itself becomes .grad, not a copy
    assert leaf.grad.data_ptr() == buffer


def test_retained_graph_gives_the_same_gradient_twice():
    s = torch.randn(4, C, dtype=F64, requires_grad=True)
    v = ldt.rdrop_loss(s, s * 0.9, Y_IDX, alpha=1.0)  # per row
    (g1,) = torch.autograd.grad((v * 3).sum(), s, retain_graph=True)
    (g2,) = torch.autograd.grad((v * 3).sum(), s)
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)


def test_double_backward_is_a_clear_error():
    s = torch.randn(4, C, dtype=F64, requires_grad=True)
    v = ldt.multilabel_ce(s, Y_BIN, reduction="sum")
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.autograd.grad(v, s, create_graph=True)


def test_label_errors_come_through_as_python_exceptions():
    s = torch.randn(4, C, dtype=F64, requires_grad=True)
    with pytest.raises(ValueError, match="7"):
        ldt.softmax_ce(s, torch.tensor([0, 1, 2, 7]))
    with pytest.raises(TypeError, match="integer class indices"):
        ldt.gamma_ce(s, torch.zeros(4), gamma=0.5)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        ldt.softmax_ce(s.detach().numpy(), Y_IDX)
    with pytest.raises(TypeError, match="int64"):
        ldt.bce(torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3))


def test_non_cpu_tensor_is_a_clear_error():
    s = torch.empty(2, 3, device="meta")
    with pytest.raises(TypeError, match="on meta.*CuPy backend"):
        ldt._backend_for([s], ["logits"])


def test_a_backend_plugs_in_by_device_type(monkeypatch):
    """The structure a GPU backend uses: the device type picks a backend, which gives the arrays,
    the function, the output tensor and the gradient buffers (here a stand-in for the CPU's that records the call)."""
    calls = []

    class Fake:
        @staticmethod
        def array(x, name):
            return (name, tuple(x.shape))

        @staticmethod
        def aux(x, name):
            return x

        @staticmethod
        def function(name):
            def fn(*args, **kw):
                calls.append((name, args, kw))
                return (0.5, None) if kw.get("grad") else 0.5
            return fn

        @staticmethod
        def tensor(value, device):
            return torch.tensor(value)

        @staticmethod
        def empty(shape, dtype, device):
            return torch.empty(shape, dtype=dtype, device=device)

    monkeypatch.setitem(ldt._BACKENDS, "cpu", lambda: Fake)
    s = torch.empty(2, 3, requires_grad=True)
    v = ldt.kd_loss(s, torch.empty(2, 3), None, temperature=2.0, alpha=0.5, reduction="sum")
    assert float(v.detach()) == 0.5
    name, args, kw = calls[0]
    assert name == "kd_loss" and args[:2] == (("student", (2, 3)), ("teacher", (2, 3)))
    assert kw["grad"] is True and kw["grad_teacher"] is False and len(kw["grad_out"]) == 1


def test_importing_logitdiv_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, logitdiv, numpy as np; logitdiv.softmax_ce(np.zeros((2, 3)), np.array([0, 1])); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


# ----------------------------------------------------------------------------------------------
# modules


def test_cross_entropy_loss_matches_torch():
    s = torch.randn(6, 5, dtype=F64, generator=gen(8), requires_grad=True)
    for y, kw in [(torch.tensor([0, 4, -100, 2, 1, 3]), {}),
                  (torch.tensor([0, 4, -100, 2, 1, 3]), {"label_smoothing": 0.15}),
                  (torch.tensor([0, 4, 2, 2, 1, 3]), {"ignore_index": 2, "label_smoothing": 0.05})]:
        for reduction in ("mean", "sum", "none"):
            got = ldt.CrossEntropyLoss(reduction=reduction, **kw)(s, y)
            want = torch.nn.CrossEntropyLoss(reduction=reduction, **kw)(s, y)
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    assert ldt.CrossEntropyLoss().reduction == "mean"
    p = torch.softmax(torch.randn(6, 5, dtype=F64), -1)  # probability targets
    torch.testing.assert_close(ldt.CrossEntropyLoss(label_smoothing=0.1)(s, p),
                               torch.nn.CrossEntropyLoss(label_smoothing=0.1)(s, p), rtol=1e-12, atol=1e-14)
    # gradients too
    y = torch.tensor([0, 4, -100, 2, 1, 3])
    ldt.CrossEntropyLoss(label_smoothing=0.1)(s, y).backward()
    s2 = s.detach().clone().requires_grad_()
    F.cross_entropy(s2, y, label_smoothing=0.1).backward()
    torch.testing.assert_close(s.grad, s2.grad, rtol=1e-10, atol=1e-14)


def test_bce_with_logits_loss_matches_torch():
    s = torch.randn(5, 6, dtype=F64, generator=gen(9), requires_grad=True)
    y = (torch.rand(5, 6, generator=gen(10)) > 0.4).to(F64)
    pw = torch.linspace(0.5, 2.0, 6, dtype=F64)
    w = torch.linspace(0.0, 1.0, 6, dtype=F64)
    for kw in ({}, {"pos_weight": pw}, {"weight": w, "pos_weight": pw}):
        ours, theirs = ldt.BCEWithLogitsLoss(**kw), torch.nn.BCEWithLogitsLoss(**kw)
        torch.testing.assert_close(ours(s, y), theirs(s, y), rtol=1e-12, atol=1e-14)  # mean over elements
        torch.testing.assert_close(ldt.BCEWithLogitsLoss(reduction="sum", **kw)(s, y),
                                   torch.nn.BCEWithLogitsLoss(reduction="sum", **kw)(s, y), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ldt.BCEWithLogitsLoss(reduction="none", **kw)(s, y),
                                   torch.nn.BCEWithLogitsLoss(reduction="none", **kw)(s, y).sum(-1),
                                   rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ldt.BCEWithLogitsLoss(reduction="batchmean", **kw)(s, y),
                                   torch.nn.BCEWithLogitsLoss(reduction="sum", **kw)(s, y) / 5, rtol=1e-12, atol=1e-14)
        s.grad = None
        ours(s, y).backward()
        s2 = s.detach().clone().requires_grad_()
        theirs(s2, y).backward()
        torch.testing.assert_close(s.grad, s2.grad, rtol=1e-10, atol=1e-15)
    m = ldt.BCEWithLogitsLoss(pos_weight=pw).float()  # buffers follow the module
    assert m.pos_weight.dtype == torch.float32 and "pos_weight" in m.state_dict()


def test_multilabel_modules_match_the_formula():
    s = torch.randn(ROWS, C, dtype=F64, generator=gen(12))
    torch.testing.assert_close(ldt.MultilabelCrossEntropy()(s, Y_BIN), t_multilabel(s, Y_BIN).mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(ldt.SparseMultilabelCrossEntropy()(s, POSITIVES),
                               t_multilabel(s, t_sparse_dense(POSITIVES, C)).mean(), rtol=1e-12, atol=0)
    pos0 = torch.where(POSITIVES < 0, 0, POSITIVES + 1)  # padding 0, classes shifted
    s0 = torch.cat([torch.full((ROWS, 1), -INF, dtype=F64), s], -1)
    torch.testing.assert_close(ldt.SparseMultilabelCrossEntropy(pad=0, reduction="sum")(s0, pos0),
                               t_multilabel(s, t_sparse_dense(POSITIVES, C)).sum(), rtol=1e-12, atol=0)


def test_global_pointer_loss_reductions():
    s = torch.randn(GP_SHAPE, dtype=F64, generator=gen(13))
    rows = t_globalpointer(s, GP_SPANS, GP_MASK)
    b, h = GP_SHAPE[:2]
    # bert4keras' NER loss is K.mean over batch × heads; GPLinker's K.mean(K.sum(loss, axis=1))
    torch.testing.assert_close(ldt.GlobalPointerLoss(reduction="batchmean")(s, GP_SPANS, GP_MASK),
                               rows.mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(ldt.GlobalPointerLoss(reduction="sum_heads_mean_batch")(s, GP_SPANS, GP_MASK),
                               rows.sum(1).mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(ldt.GlobalPointerLoss()(s, GP_SPANS, mask=GP_MASK), rows.sum() / (b * h),
                               rtol=1e-12, atol=0)
    flat = torch.where(GP_SPANS[..., 0] < 0, -1, GP_SPANS[..., 0] * 4 + GP_SPANS[..., 1])
    torch.testing.assert_close(ldt.GlobalPointerLoss(reduction="none")(s, flat, GP_MASK), rows, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="sum_heads_mean_batch"):
        ldt.GlobalPointerLoss(reduction="median")


def test_gamma_distillation_rdrop_modules():
    s = torch.randn(ROWS, C, dtype=F64, generator=gen(14))
    s2 = torch.randn(ROWS, C, dtype=F64, generator=gen(15))
    torch.testing.assert_close(ldt.GammaCrossEntropy(0.3, ignore_index=3)(s, Y_IDX),
                               t_gamma(s, Y_IDX, 0.3, 3).sum() / 3, rtol=1e-12, atol=0)
    torch.testing.assert_close(ldt.GammaCrossEntropy(0.3, threshold=0.5)(s, Y_IDX),
                               ldt.gamma_ce(s, Y_IDX, gamma=0.3, threshold=0.5, reduction="mean"))
    kd = ldt.DistillationLoss(temperature=2.0, alpha=0.3)
    torch.testing.assert_close(kd(s, s2, Y_IDX), t_kd(s, s2, Y_IDX, 2.0, 0.3).mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(ldt.DistillationLoss(temperature=2.0, alpha=1.0, t2=False)(s, s2),
                               F.kl_div(F.log_softmax(s / 2, -1), F.log_softmax(s2 / 2, -1), log_target=True,
                                        reduction="batchmean"), rtol=1e-12, atol=0)
    torch.testing.assert_close(ldt.RDropLoss(alpha=2.0)(s, s2, Y_IDX), t_rdrop_softmax(s, s2, Y_IDX, 2.0).mean(),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(ldt.RDropLoss(alpha=2.0, kind="sigmoid", reduction="sum")(s, s2, Y_BIN),
                               t_rdrop_sigmoid(s, s2, Y_BIN, 2.0).sum(), rtol=1e-12, atol=0)
    assert "alpha=2.0" in repr(ldt.RDropLoss(alpha=2.0)) and "reduction='mean'" in repr(kd)
    with pytest.raises(ValueError, match="kind"):
        ldt.RDropLoss(alpha=1.0, kind="cosine")


@pytest.mark.parametrize("module", [ldt.CrossEntropyLoss, ldt.BCEWithLogitsLoss, ldt.MultilabelCrossEntropy,
                                    ldt.SparseMultilabelCrossEntropy, ldt.GlobalPointerLoss])
def test_modules_default_to_mean_and_document_it(module):
    m = module()
    assert m.reduction == "mean"
    assert "mean" in module.__doc__ and '"none"' in module.__doc__


@pytest.mark.parametrize("fn", [ldt.softmax_ce, ldt.bce, ldt.multilabel_ce, ldt.sparse_multilabel_ce,
                                ldt.globalpointer_ce, ldt.gamma_ce, ldt.kd_loss, ldt.rdrop_loss])
def test_functions_default_to_none_and_say_what_is_not_differentiated(fn):
    import inspect

    assert inspect.signature(fn).parameters["reduction"].default == "none"
    assert "not differentiated" in fn.__doc__ and "PyTorch's loss modules" in fn.__doc__


# ----------------------------------------------------------------------------------------------
# a training loop: R-Drop on a linear model, logitdiv's loss against the plain-torch loss


def _rdrop_training(loss_fn, kind: str, steps: int = 300):
    """A linear model with input dropout on a synthetic task whose features are generated from the
    labels (multilabel: each class present with probability 0.2; softmax: one class), trained with
    Adam; returns every step's loss and the final weights."""
    torch.manual_seed(0)
    g = gen(100)
    n, d, c = 512, 32, 10
    if kind == "sigmoid":
        y = (torch.rand(n, c, generator=g) < 0.2).to(F64)
        onehots = y
    else:
        y = torch.randint(0, c, (n,), generator=g)
        onehots = F.one_hot(y, c).to(F64)
    x = onehots @ torch.randn(c, d, generator=g, dtype=F64) + 0.3 * torch.randn(n, d, generator=g, dtype=F64)
    model = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(d, c)).double()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for step in range(steps):
        idx = torch.arange(step * 64, step * 64 + 64) % n
        s1, s2 = model(x[idx]), model(x[idx])  # two dropout passes
        loss = loss_fn(s1, s2, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), [p.detach().clone() for p in model.parameters()]


def _plain_rdrop(kind: str, alpha: float):
    if kind == "sigmoid":
        return lambda s1, s2, y: t_rdrop_sigmoid(s1, s2, y, alpha).mean()
    return lambda s1, s2, y: (F.cross_entropy(s1, y) + F.cross_entropy(s2, y)
                              + alpha / 2 * (t_kl(s1, s2) + t_kl(s2, s1)).mean())


@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
def test_rdrop_training_loop_matches_plain_torch(kind):
    alpha = 4.0
    ours, w_ours = _rdrop_training(ldt.RDropLoss(alpha=alpha, kind=kind), kind)
    plain, w_plain = _rdrop_training(_plain_rdrop(kind, alpha), kind)
    np.testing.assert_allclose(ours, plain, rtol=1e-6, atol=0)
    for a, b in zip(w_ours, w_plain):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    # it learns: the last steps' loss is well below the first steps'
    assert ours[-20:].mean() < 0.2 * ours[:5].mean(), (ours[:5].mean(), ours[-20:].mean())
