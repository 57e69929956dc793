"""logitdiv.torch for the divergences: gradcheck in float64 for every function and option, values
equal to the plain-torch formulas, zero-copy reads, the modules, and clear errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import logitdiv.torch as ldt

REDUCTIONS = ["none", "sum", "mean", "batchmean"]


def plain_torch(name, s, t, temperature=1.0, beta=0.5, weights=None, where=None):
    """The textbook formulas in float64 torch, on the masked logits."""
    s, t = s / temperature, t / temperature
    if where is not None:
        s = s.masked_fill(~where, float("-inf"))
        t = t.masked_fill(~where, float("-inf"))
    if name in ("kl", "sym_kl", "js"):
        lp, lq = F.log_softmax(s, -1), F.log_softmax(t, -1)
        p, q = lp.exp(), lq.exp()
        xlogy = lambda a, la, lb: torch.where(a > 0, a * (la - lb), torch.zeros_like(a))
        if name == "kl":
            return xlogy(p, lp, lq).sum(-1)
        if name == "sym_kl":
            return (xlogy(p, lp, lq) + xlogy(q, lq, lp)).sum(-1)
        m = beta * p + (1 - beta) * q
        lm = m.log()
        return beta * xlogy(p, lp, lm).sum(-1) + (1 - beta) * xlogy(q, lq, lm).sum(-1)
    w = torch.ones_like(s) if weights is None else weights.expand_as(s)
    keep = torch.ones_like(s, dtype=torch.bool) if where is None else where.expand_as(s)
    s0, t0 = torch.where(keep, s, 0.0), torch.where(keep, t, 0.0)
    if name == "sigmoid_kl":
        term = F.softplus(t0) - F.softplus(s0) - torch.sigmoid(s0) * (t0 - s0)
    else:
        term = (torch.sigmoid(s0) - torch.sigmoid(t0)) * (s0 - t0)
    return torch.where(keep, w * term, 0.0).sum(-1)


FUNCS = {
    "kl": ldt.kl, "sym_kl": ldt.sym_kl, "js": ldt.js,
    "sigmoid_kl": ldt.sigmoid_kl, "sigmoid_sym_kl": ldt.sigmoid_sym_kl,
}


def inputs(shape=(3, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    t = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    return s.requires_grad_(), t.requires_grad_()


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(name, reduction):
    s, t = inputs()
    assert gradcheck(lambda a, b: FUNCS[name](a, b, reduction=reduction, temperature=1.7), (s, t))


@pytest.mark.parametrize("name", FUNCS)
def test_gradcheck_with_mask_and_leading_axes(name):
    s, t = inputs((2, 3, 5))
    where = torch.tensor([True, False, True, True, False])
    assert gradcheck(lambda a, b: FUNCS[name](a, b, where=where, reduction="mean"), (s, t))


@pytest.mark.parametrize("name", ["sigmoid_kl", "sigmoid_sym_kl"])
def test_gradcheck_with_weights(name):
    s, t = inputs()
    w = torch.linspace(0.0, 2.0, 7, dtype=torch.float64)
    assert gradcheck(lambda a, b: FUNCS[name](a, b, weights=w, reduction="sum"), (s, t))


def test_gradcheck_js_beta():
    s, t = inputs()
    assert gradcheck(lambda a, b: ldt.js(a, b, beta=0.2, reduction="none"), (s, t))


@pytest.mark.parametrize("name", FUNCS)
def test_values_equal_plain_torch(name):
    s, t = inputs((4, 2, 9), seed=3)
    where = torch.rand(9, generator=torch.Generator().manual_seed(1)) > 0.3
    kw = {"beta": 0.3} if name == "js" else {}
    got = FUNCS[name](s, t, temperature=1.5, where=where, **kw)
    want = plain_torch(name, s.detach(), t.detach(), temperature=1.5, where=where, **kw)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_gradients_equal_plain_torch_autograd():
    s, t = inputs((5, 11), seed=7)
    ldt.sym_kl(s, t, reduction="batchmean").backward()
    g_ld = (s.grad.clone(), t.grad.clone())
    s2, t2 = s.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    (plain_torch("sym_kl", s2, t2).sum() / 5).backward()
    torch.testing.assert_close(g_ld[0], s2.grad, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(g_ld[1], t2.grad, rtol=1e-10, atol=1e-14)


def test_only_the_needed_input_gets_a_gradient():
    s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 4, dtype=torch.float64)
    ldt.kl(s, t, reduction="sum").backward()
    assert s.grad is not None and t.grad is None


def test_cpu_tensors_are_read_without_copy():
    x = torch.randn(4, 6)
    assert ldt._numpy_view(x, "x").ctypes.data == x.data_ptr()
    sliced = torch.randn(8, 6)[::2]  # strided rows
    assert ldt._numpy_view(sliced, "x").ctypes.data == sliced.data_ptr()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs(dtype):
    s64, t64 = inputs((3, 8), seed=5)
    s, t = s64.detach().to(dtype).requires_grad_(), t64.detach().to(dtype).requires_grad_()
    v = ldt.sym_kl(s, t, reduction="sum")
    v.backward()
    v = v.detach()
    assert s.grad.dtype == dtype
    want = plain_torch("sym_kl", s.detach().double(), t.detach().double()).sum()
    assert abs(v.item() - want.item()) <= 1e-5 * want.item()


def test_double_backward_is_a_clear_error():
    s, t = inputs()
    v = ldt.kl(s, t, reduction="sum")
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.autograd.grad(v, s, create_graph=True)


def test_grad_output_scales_the_gradient():
    s, t = inputs()
    v = ldt.kl(s, t)  # per row
    weights = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    (v * weights).sum().backward()
    s2 = s.detach().clone().requires_grad_()
    (plain_torch("kl", s2, t.detach()) * weights).sum().backward()
    torch.testing.assert_close(s.grad, s2.grad, rtol=1e-10, atol=1e-14)


def test_modules():
    s, t = inputs()
    m = ldt.KLDivergence(temperature=2.0)
    assert "batchmean" in repr(m)
    torch.testing.assert_close(m(s, t), ldt.kl(s, t, temperature=2.0, reduction="batchmean"))
    torch.testing.assert_close(ldt.JSDivergence(beta=0.25)(s, t), ldt.js(s, t, beta=0.25, reduction="batchmean"))
    torch.testing.assert_close(ldt.GlobalPointerKL(reduction="sum")(s, t), ldt.gp_kl(s, t, reduction="sum"))
    torch.testing.assert_close(ldt.SymmetricKL()(s, t), ldt.sym_kl(s, t, reduction="batchmean"))
    torch.testing.assert_close(ldt.SigmoidKL()(s, t), ldt.sigmoid_kl(s, t, reduction="batchmean"))


def test_non_cpu_tensor_is_a_clear_error():
    # meta tensors reach the operator's fake (shape-only) implementation; a device without a
    # backend is refused where the operator picks the backend
    s = torch.empty(2, 3, device="meta")
    assert ldt.kl(s, s).shape == (2,)
    with pytest.raises(TypeError, match="on meta"):
        ldt._backend_for([s, s], ["s", "t"])


def test_integer_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="int64"):
        ldt.kl(torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3, dtype=torch.int64))


def test_importing_logitdiv_does_not_import_torch():
    code = "import sys, logitdiv; import numpy as np; logitdiv.kl(np.zeros(3), np.zeros(3)); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
