"""The loss options of LLM training — softmax_ce's class `weight` (PyTorch's, with its mean over
weighted targets), the z-loss and logit soft-capping (Liger-Kernel's definitions), the accuracy
returned with the loss — and the total variation distance `tv`, with soft-capping for the softmax
divergences: in NumPy, torch, JAX and C, values and gradients against PyTorch float64 autograd,
mpmath and closed forms, in every reduction.

Definitions (Liger-Kernel, src/liger_kernel/ops/cross_entropy.py, and PyTorch's F.cross_entropy):
- soft-capping: logits ← c · tanh(logits / c) before the softmax (−inf stays absent here);
- z-loss: z · lse² per row (lse of the capped logits), added to the row's loss; under "mean" the
  z-term is divided by the number of rows not ignored, the weighted CE by Σ w_y;
- weighted CE with label smoothing ε: (1−ε) w_y (lse − x_y) + ε/C Σ_i w_i (lse − x_i);
- token accuracy: argmax = label, over the rows not ignored;
- TV: ½ Σ |p − q| (Liger's LigerTVDLoss, here from logits), sign(0) = 0 in its subgradient."""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import subprocess

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import logitdiv as ld
import logitdiv.torch as ldt

F64 = torch.float64
REDUCTIONS = ("none", "sum", "mean", "batchmean")
ROOT = pathlib.Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------
# PyTorch float64 references


def cap(x: torch.Tensor, c):
    return x if c is None else c * torch.tanh(x / c)


def t_ce(x, y, *, weight=None, eps=0.0, z=0.0, softcap=None, reduction="none", ignore_index=-100):
    """(loss, z-term): F.cross_entropy on the capped logits plus Liger-Kernel's z-loss."""
    xc = cap(x, softcap)
    red = "sum" if reduction == "batchmean" else reduction
    loss = F.cross_entropy(xc, y, weight=weight, label_smoothing=eps, ignore_index=ignore_index, reduction=red)
    if y.dtype.is_floating_point:
        kept = torch.ones(x.shape[0], dtype=torch.bool)
    else:
        kept = y != ignore_index
    zrow = torch.where(kept, z * torch.logsumexp(xc, -1) ** 2, torch.zeros((), dtype=x.dtype))
    if reduction == "none":
        return loss + zrow, zrow
    if reduction == "sum":
        return loss + zrow.sum(), zrow.sum()
    if reduction == "mean":
        zr = zrow.sum() / kept.sum()
        return loss + zr, zr
    n = x.shape[0]
    return (loss + zrow.sum()) / n, zrow.sum() / n


def t_accuracy(x, y, reduction, ignore_index=-100):
    kept = y != ignore_index
    correct = (x.argmax(-1) == y) & kept
    return correct.to(F64) if reduction == "none" else correct.sum().to(F64) / kept.sum()


def t_tv(s, t, *, temperature=1.0, softcap=None, reduction="none"):
    p = torch.softmax(cap(s, softcap) / temperature, -1)
    q = torch.softmax(cap(t, softcap) / temperature, -1)
    v = 0.5 * (p - q).abs().sum(-1)
    return {"none": v, "sum": v.sum(), "mean": v.mean(), "batchmean": v.sum() / v.shape[0]}[reduction]


def t_kl(s, t, *, temperature=1.0, softcap=None, reduction="none"):
    ls = torch.log_softmax(cap(s, softcap) / temperature, -1)
    lt = torch.log_softmax(cap(t, softcap) / temperature, -1)
    v = (ls.exp() * (ls - lt)).sum(-1)
    return {"none": v, "sum": v.sum(), "mean": v.mean(), "batchmean": v.sum() / v.shape[0]}[reduction]


def ref_with_grad(fn, *xs, **kw):
    """fn's value and its gradients w.r.t. xs (of the sum of the values for "none")."""
    xs = [x.detach().clone().requires_grad_() for x in xs]
    out = fn(*xs, **kw)
    v = out[0] if isinstance(out, tuple) else out
    grads = torch.autograd.grad(v.sum(), xs)
    return out, grads


def close(got, want, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=rtol, atol=atol)


B, C = 6, 7


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.randn(B, C, generator=g, dtype=F64)
    t = x + torch.randn(B, C, generator=g, dtype=F64)
    y = torch.tensor([3, -100, 0, 6, 2, 3])
    w = torch.linspace(0.2, 2.0, C, dtype=F64)
    return x, t, y, w


CASES = list(itertools.product(REDUCTIONS, (False, True), (0.0, 0.1), (0.0, 1e-3), (None, 2.5)))


def _id(case):
    r, weighted, eps, z, c = case
    return f"{r}-w{int(weighted)}-eps{eps}-z{z}-cap{c}"


# ----------------------------------------------------------------------------------------------
# NumPy API against PyTorch


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_softmax_ce_options_match_torch(case):
    reduction, weighted, eps, z, c = case
    x, _, y, w = data()
    weight = w if weighted else None
    (want, want_z), (want_g,) = ref_with_grad(
        lambda x: t_ce(x, y, weight=weight, eps=eps, z=z, softcap=c, reduction=reduction), x)
    got, got_z, got_acc, got_g = ld.softmax_ce(
        x.numpy(), y.numpy(), weight=None if weight is None else weight.numpy(), label_smoothing=eps, z_loss=z,
        softcap=c, return_z_loss=True, return_accuracy=True, reduction=reduction, grad=True)
    close(got, want.detach())
    close(got_z, want_z.detach())
    close(got_g, want_g)
    close(got_acc, t_accuracy(cap(x, c), y, reduction))
    # the same value without the extras
    close(ld.softmax_ce(x.numpy(), y.numpy(), weight=None if weight is None else weight.numpy(),
                        label_smoothing=eps, z_loss=z, softcap=c, reduction=reduction), want.detach())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_weighted_probability_targets_match_torch(reduction, eps):
    x, _, _, w = data(1)
    g = torch.Generator().manual_seed(5)
    probs = torch.softmax(torch.randn(B, C, generator=g, dtype=F64), -1)
    (want, _), (want_g,) = ref_with_grad(
        lambda x: t_ce(x, probs, weight=w, eps=eps, softcap=4.0, reduction=reduction), x)
    got, got_g = ld.softmax_ce(x.numpy(), probs.numpy(), weight=w.numpy(), label_smoothing=eps, softcap=4.0,
                               reduction=reduction, grad=True)
    close(got, want.detach())
    close(got_g, want_g)


def test_liger_closed_forms_of_the_z_loss_and_the_cap():
    """Liger-Kernel's gradient, written out: dx_i = ((1 + 2z·lse) p_i − ε/V)/N − [i = y](1−ε)/N,
    times 1 − tanh²(x_i/c); its loss (lse − x_y)(1−ε) + ε(lse − mean x) + z·lse², mean over N."""
    x, _, y, _ = data(2)
    keep = y != -100
    z, eps, c = 1e-2, 0.1, 3.0
    got, got_z, got_g = ld.softmax_ce(x.numpy(), y.numpy(), z_loss=z, label_smoothing=eps, softcap=c,
                                      return_z_loss=True, reduction="mean", grad=True)
    xn, yn = x.numpy(), y.numpy()
    xc = c * np.tanh(xn / c)
    lse = np.log(np.exp(xc).sum(-1))
    p = np.exp(xc - lse[:, None])
    n = keep.sum().item()
    rows = np.arange(B)[keep.numpy()]
    loss = ((lse - xc[np.arange(B), np.where(keep, y, 0)]) * (1 - eps) + eps * (lse - xc.mean(-1)) + z * lse ** 2)
    close(got, loss[rows].sum() / n)
    close(got_z, (z * lse ** 2)[rows].sum() / n)
    dx = ((1 + 2 * z * lse[:, None]) * p - eps / C) / n
    dx[rows, yn[rows]] -= (1 - eps) / n
    dx *= 1 - np.tanh(xn / c) ** 2
    dx[~keep.numpy()] = 0.0
    close(got_g, dx, rtol=1e-11, atol=1e-15)


def test_z_term_per_row_is_scale_times_lse_squared():
    x, _, y, _ = data(3)
    v, zr = ld.softmax_ce(x.numpy(), y.numpy(), z_loss=1e-4, softcap=5.0, return_z_loss=True)
    lse = torch.logsumexp(cap(x, 5.0), -1).numpy()
    want = np.where(y.numpy() != -100, 1e-4 * lse ** 2, 0.0)
    close(zr, want)
    close(v - zr, ld.softmax_ce(x.numpy(), y.numpy(), softcap=5.0))


def test_softcap_gradient_far_out_on_the_tanh_against_mpmath():
    """sech²(20) ≈ 1.7e-17: torch's 1 − tanh² gives 0 in float64; the gradient keeps its digits."""
    x = np.array([[20.0, 0.0, -1.0]])
    _, g = ld.softmax_ce(x, np.array([1]), softcap=1.0, grad=True)
    mpmath.mp.dps = 40
    xc = [mpmath.tanh(mpmath.mpf(v)) for v in x[0]]
    p0 = mpmath.exp(xc[0]) / sum(mpmath.exp(v) for v in xc)
    want = p0 * mpmath.sech(20) ** 2
    assert abs(g[0, 0] - float(want)) <= 1e-13 * float(want)
    (_, _), (tg,) = ref_with_grad(lambda x: t_ce(x, torch.tensor([1]), softcap=1.0), torch.from_numpy(x))
    assert tg[0, 0] == 0.0  # the textbook form loses it


def test_accuracy_ties_go_to_the_first_class_and_ignored_rows_do_not_count():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [0.0, 0.0, 5.0], [0.0, 1.0, 0.0]])
    y = np.array([2, 0, -100, 1])
    _, acc = ld.softmax_ce(x, y, return_accuracy=True)
    np.testing.assert_array_equal(acc, [0.0, 1.0, 0.0, 1.0])
    _, acc = ld.softmax_ce(x, y, return_accuracy=True, reduction="mean")
    assert acc == pytest.approx(2 / 3)
    # against probabilities: the target's argmax
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    _, acc = ld.softmax_ce(x[:2], probs, return_accuracy=True, reduction="sum")
    assert acc == 0.5  # row 0 predicts class 1, the target says 2; row 1 agrees


def test_float32_and_bfloat16_logits_give_float32_extras_close_to_float64():
    x, _, y, w = data(4)
    want = ld.softmax_ce(x.numpy(), y.numpy(), weight=w.numpy(), z_loss=1e-3, softcap=2.0,
                         return_z_loss=True, return_accuracy=True, reduction="mean", grad=True)
    got = ld.softmax_ce(x.numpy().astype(np.float32), y.numpy(), weight=w.numpy(), z_loss=1e-3, softcap=2.0,
                        return_z_loss=True, return_accuracy=True, reduction="mean", grad=True)
    assert [np.asarray(v).dtype for v in got] == [np.float32] * 4
    for a, b in zip(got, want):
        close(a, b, rtol=1e-5, atol=1e-7)


def test_bad_options_are_value_errors_naming_them():
    x, t, y, _ = data()
    s = x.numpy()
    with pytest.raises(ValueError, match="weight holds 3"):
        ld.softmax_ce(s, y.numpy(), weight=np.ones(3))
    with pytest.raises(ValueError, match="weight must be finite and ≥ 0"):
        ld.softmax_ce(s, y.numpy(), weight=-np.ones(C))
    with pytest.raises(ValueError, match="1-D"):
        ld.softmax_ce(s, y.numpy(), weight=np.ones((2, C)))
    with pytest.raises(ValueError, match="z_loss"):
        ld.softmax_ce(s, y.numpy(), z_loss=-1.0)
    for c in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="softcap"):
            ld.softmax_ce(s, y.numpy(), softcap=c)
        with pytest.raises(ValueError, match="softcap"):
            ld.tv(s, t.numpy(), softcap=c)
    with pytest.raises(TypeError, match="return_z_loss"):
        ld.softmax_ce(s, y.numpy(), return_z_loss=1)
    with pytest.raises(TypeError, match="softcap"):
        ld.kl(s, t.numpy(), softcap="2")


# ----------------------------------------------------------------------------------------------
# tv and the capped divergences against PyTorch


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("softcap", [None, 2.0])
@pytest.mark.parametrize("temperature", [1.0, 1.5])
def test_tv_matches_torch_with_its_subgradients(reduction, softcap, temperature):
    x, t, _, _ = data(6)
    want, (gs, gt) = ref_with_grad(t_tv, x, t, temperature=temperature, softcap=softcap, reduction=reduction)
    got, got_s, got_t = ld.tv(x.numpy(), t.numpy(), temperature=temperature, softcap=softcap,
                              reduction=reduction, grad=True)
    close(got, want.detach())
    close(got_s, gs)
    close(got_t, gt)


def test_tv_conventions():
    s = np.array([[0.0, 1.0, -np.inf, 2.0], [0.5, 0.5, 0.5, 0.5]])
    t = np.array([[0.0, -np.inf, 1.0, 2.0], [0.5, 0.5, 0.5, 0.5]])
    v, gs, gt = ld.tv(s, t, grad=True)
    p, q = np.exp(s[0]) / np.exp(s[0]).sum(), np.exp(t[0]) / np.exp(t[0]).sum()
    close(v[0], 0.5 * np.abs(p - q).sum())
    assert v[1] == 0.0 and np.all(gs[1] == 0.0)          # equal rows: 0 and a zero subgradient
    assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gt))  # one-sided −inf: finite, unlike KL
    assert 0.0 <= v[0] <= 1.0
    # softmax shift invariance
    close(ld.tv(s, t + 7.0), v, rtol=1e-14, atol=1e-16)


def test_tv_of_nearly_equal_float32_rows_against_mpmath():
    g = np.random.default_rng(7)
    s = (4.0 * g.standard_normal((3, 50))).astype(np.float32)
    t = (s + 1e-5 * g.standard_normal((3, 50)).astype(np.float32)).astype(np.float32)
    got = ld.tv(s, t)
    mpmath.mp.dps = 40
    for r in range(3):
        es = [mpmath.exp(mpmath.mpf(float(v))) for v in s[r]]
        et = [mpmath.exp(mpmath.mpf(float(v))) for v in t[r]]
        zs, zt = sum(es), sum(et)
        want = float(sum(abs(a / zs - b / zt) for a, b in zip(es, et)) / 2)
        assert abs(got[r] - want) <= 1e-5 * want, (got[r], want)


@pytest.mark.parametrize("kind", ["kl", "sym_kl", "js"])
@pytest.mark.parametrize("reduction", ["none", "batchmean"])
def test_softcap_of_the_softmax_divergences_matches_torch(kind, reduction):
    x, t, _, _ = data(8)

    def ref(s, t, **kw):
        if kind == "kl":
            return t_kl(s, t, **kw)
        if kind == "sym_kl":
            return t_kl(s, t, **kw) + t_kl(t, s, **kw)
        ls, lt = (torch.log_softmax(cap(v, 1.5) / 1.2, -1) for v in (s, t))
        m = 0.5 * (ls.exp() + lt.exp())
        v = 0.5 * (ls.exp() * (ls - m.log())).sum(-1) + 0.5 * (lt.exp() * (lt - m.log())).sum(-1)
        return v if kw["reduction"] == "none" else v.sum() / v.shape[0]

    want, (gs, gt) = ref_with_grad(ref, x, t, temperature=1.2, softcap=1.5, reduction=reduction)
    got, got_s, got_t = getattr(ld, kind)(x.numpy(), t.numpy(), temperature=1.2, softcap=1.5,
                                          reduction=reduction, grad=True)
    close(got, want.detach(), rtol=1e-11, atol=1e-14)
    close(got_s, gs, rtol=1e-10, atol=1e-14)
    close(got_t, gt, rtol=1e-10, atol=1e-14)


def test_softcap_keeps_absent_classes_absent_and_refuses_the_sigmoid_family():
    s = np.array([[0.0, -np.inf, 1.0]])
    t = np.array([[0.5, -np.inf, 0.0]])
    close(ld.kl(s, t, softcap=2.0), ld.kl(2.0 * np.tanh(s[:, [0, 2]] / 2.0), 2.0 * np.tanh(t[:, [0, 2]] / 2.0)))
    with pytest.raises(TypeError):
        ld.sigmoid_kl(s, t, softcap=2.0)  # not an option of the sigmoid family


# ----------------------------------------------------------------------------------------------
# torch


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_torch_softmax_ce_with_every_option_matches_f_cross_entropy(reduction):
    x, _, y, w = data(9)
    kw = dict(weight=w, eps=0.1, z=1e-3, softcap=2.5, reduction=reduction)
    (want, want_z), (want_g,) = ref_with_grad(lambda x: t_ce(x, y, **kw), x)
    xx = x.clone().requires_grad_()
    loss, z, acc = ldt.softmax_ce(xx, y, weight=w, label_smoothing=0.1, z_loss=1e-3, softcap=2.5,
                                  return_z_loss=True, return_accuracy=True, reduction=reduction)
    assert not z.requires_grad and not acc.requires_grad
    loss.sum().backward()
    close(loss.detach(), want.detach())
    close(z, want_z.detach())
    close(acc, t_accuracy(cap(x, 2.5), y, reduction))
    close(xx.grad, want_g)


def test_torch_module_and_gradcheck():
    x, t, y, w = data(10)
    module = ldt.CrossEntropyLoss(w, label_smoothing=0.1, z_loss=1e-3, softcap=2.5)
    (want, _), _ = ref_with_grad(lambda x: t_ce(x, y, weight=w, eps=0.1, z=1e-3, softcap=2.5, reduction="mean"), x)
    close(module(x, y), want.detach())
    assert "weight" in dict(module.named_buffers())
    # without the extra options the module is torch's
    close(ldt.CrossEntropyLoss(w)(x, y), F.cross_entropy(x, y, weight=w))
    xs = x[:3].clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a: ldt.softmax_ce(a, y[:3], weight=w, z_loss=1e-2, softcap=2.0, reduction="mean"), (xs,))
    ts = t[:3].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ldt.tv(a, b, softcap=2.0, reduction="sum"), (xs, ts))
    assert torch.autograd.gradcheck(lambda a, b: ldt.js(a, b, softcap=2.0), (xs, ts))
    close(ldt.TVDistance(softcap=2.0)(x, t), t_tv(x, t, softcap=2.0, reduction="batchmean"))


def test_torch_opcheck_of_the_new_arguments():
    x, t, y, w = data(11)
    s = x.clone().requires_grad_()
    op = torch.ops.logitdiv.softmax_ce.default
    base = (s, y, 0.1, -100, 1.0, None, "mean", True)
    for kwargs in [dict(weight=w, z_loss=1e-3, softcap=2.5, return_z_loss=True, return_accuracy=True),
                   dict(weight=w), dict(softcap=2.0, return_accuracy=True)]:
        torch.library.opcheck(op, base, kwargs, test_utils=("test_schema", "test_autograd_registration",
                                                            "test_faketensor", "test_aot_dispatch_dynamic"))
    torch.library.opcheck(torch.ops.logitdiv.kl.default, (s, t, 1.0, None, "sum", True), dict(softcap=1.5),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor",
                                      "test_aot_dispatch_dynamic"))


def test_torch_compile_keeps_the_options_in_one_graph():
    x, t, y, w = data(12)

    def step(a, b):
        loss, z, acc = ldt.softmax_ce(a, y, weight=w, z_loss=1e-3, softcap=2.5, return_z_loss=True,
                                      return_accuracy=True, reduction="mean")
        return loss + ldt.tv(a, b, softcap=2.0, reduction="batchmean"), z, acc

    explanation = torch._dynamo.explain(step)(x, t)
    assert explanation.graph_break_count == 0
    got = torch.compile(step, backend="aot_eager", fullgraph=True)(x, t)
    for a, b in zip(got, step(x, t)):
        torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------------------------
# JAX


@pytest.fixture
def jx():
    jax = pytest.importorskip("jax")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    import logitdiv.jax as ldj
    yield jax, ldj
    jax.config.update("jax_enable_x64", before)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_jax_softmax_ce_options_under_jit_and_grad(jx, reduction):
    jax, ldj = jx
    jnp = jax.numpy
    x, _, y, w = data(13)
    kw = dict(weight=w, eps=0.1, z=1e-3, softcap=2.5, reduction=reduction)
    (want, want_z), (want_g,) = ref_with_grad(lambda x: t_ce(x, y, **kw), x)
    yj, wj = jnp.asarray(y.numpy()), jnp.asarray(w.numpy())

    def f(s):
        loss, z, acc = ldj.softmax_ce(s, yj, weight=wj, label_smoothing=0.1, z_loss=1e-3, softcap=2.5,
                                      return_z_loss=True, return_accuracy=True, reduction=reduction)
        return loss.sum(), (loss, z, acc)

    (_, (loss, z, acc)), g = jax.jit(jax.value_and_grad(f, has_aux=True))(jnp.asarray(x.numpy()))
    close(loss, want.detach())
    close(z, want_z.detach())
    close(acc, t_accuracy(cap(x, 2.5), y, reduction))
    close(g, want_g)


def test_jax_tv_and_capped_kl_under_vmap_and_grad(jx):
    jax, ldj = jx
    jnp = jax.numpy
    x, t, _, _ = data(14)
    xs, ts = jnp.asarray(x.numpy()), jnp.asarray(t.numpy())
    # vmap over rows of single-row calls equals the batched call
    per = jax.vmap(lambda a, b: ldj.tv(a, b, softcap=2.0))(xs, ts)
    close(per, t_tv(x, t, softcap=2.0))
    g = jax.grad(lambda a: ldj.tv(a, ts, softcap=2.0, reduction="mean"))(xs)
    _, (gs, _) = ref_with_grad(t_tv, x, t, softcap=2.0, reduction="mean")
    close(g, gs)
    g = jax.jit(jax.grad(lambda a: ldj.kl(a, ts, softcap=1.5, reduction="sum")))(xs)
    _, (gs, _) = ref_with_grad(t_kl, x, t, softcap=1.5, reduction="sum")
    close(g, gs, rtol=1e-10)


# ----------------------------------------------------------------------------------------------
# C


@pytest.fixture(scope="module")
def c_output(tmp_path_factory):
    subprocess.run(["cargo", "build", "-q", "-p", "logitdiv-capi"], cwd=ROOT, check=True)
    library = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
    out = tmp_path_factory.mktemp("llm_c")
    exe = out / "test_llm_options"
    subprocess.run(
        [os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
         str(ROOT / "tests/c/test_llm_options.c"), "-I", str(ROOT / "rust/capi/include"),
         "-L", str(library), "-llogitdiv", f"-Wl,-rpath,{library}", "-lm", "-o", str(exe)], check=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    lines = {}
    for line in run.stdout.splitlines():
        name, key, *rest = line.split()
        lines[(name, key)] = rest
    return exe, lines


def c_inputs():
    i = np.arange(35)
    s = 3.0 * np.sin(0.37 * i + 0.11)
    t = 2.0 * np.cos(0.23 * i - 0.4)
    w = 0.25 + 0.5 * np.arange(7)
    return (torch.from_numpy(s.reshape(5, 7)), torch.from_numpy(t.reshape(5, 7)),
            torch.tensor([3, -100, 0, 6, 2]), torch.from_numpy(w))


def nums(row):
    return np.array([float(v) for v in row])


@pytest.mark.parametrize("r", range(4))
def test_c_softmax_ce_ex_and_tv_match_torch(c_output, r):
    _, out = c_output
    reduction = REDUCTIONS[r]
    s, t, y, w = c_inputs()
    key = str(r)
    assert out[("ce_status", key)] == ["0"] and out[("tv_status", key)] == ["0"]
    (want, want_z), (want_g,) = ref_with_grad(
        lambda x: t_ce(x, y, weight=w, eps=0.1, z=1e-3, softcap=2.5, reduction=reduction), s)
    result, z_result, accuracy = nums(out[("ce", key)])
    close(result, want.detach().sum(), rtol=1e-12)
    close(z_result, want_z.detach().sum(), rtol=1e-12)
    close(accuracy, t_accuracy(cap(s, 2.5), y, "mean"))
    close(nums(out[("ce_grad", key)]).reshape(5, 7), want_g, rtol=1e-11, atol=1e-15)
    close(float(out[("ce_plain", key)][1]), result, rtol=0, atol=0)
    if reduction == "none":
        close(nums(out[("ce_values", key)]), want.detach())
        close(nums(out[("ce_z", key)]), want_z.detach())
        close(nums(out[("ce_correct", key)]), t_accuracy(cap(s, 2.5), y, "none"))
    tv_want, (gs, gt) = ref_with_grad(t_tv, s, t, temperature=1.5, softcap=2.0, reduction=reduction)
    close(float(out[("tv", key)][0]), tv_want.detach().sum())
    close(nums(out[("tv_grad_s", key)]).reshape(5, 7), gs)
    close(nums(out[("tv_grad_t", key)]).reshape(5, 7), gt)
    if reduction == "none":
        close(nums(out[("tv_values", key)]), tv_want.detach())
    assert out[("kl_capped", key)][0] == "0"
    close(float(out[("kl_capped", key)][1]),
          t_kl(s, t, temperature=1.5, softcap=2.0, reduction=reduction).sum(), rtol=1e-11)


def test_c_float32_and_bad_settings(c_output):
    _, out = c_output
    s, t, y, w = c_inputs()
    s32, t32 = s.float().double(), t.float().double()
    assert out[("ce32_status", "2")] == ["0"] and out[("tv32_status", "2")] == ["0"]
    (want, want_z), (want_g,) = ref_with_grad(
        lambda x: t_ce(x, y, weight=w, z=1e-3, softcap=2.5, reduction="mean"), s32)
    result, z_result, _ = nums(out[("ce32", "2")])
    close(result, want.detach(), rtol=1e-12)
    close(z_result, want_z.detach(), rtol=1e-12)
    close(nums(out[("ce32_grad", "2")]).reshape(5, 7), want_g, rtol=1e-6, atol=1e-8)
    tv_want, (gs, _) = ref_with_grad(t_tv, s32, t32, reduction="mean")
    close(float(out[("tv32", "2")][0]), tv_want.detach(), rtol=1e-12)
    close(nums(out[("tv32_grad_s", "2")]).reshape(5, 7), gs, rtol=1e-6, atol=1e-8)
    bad_argument = "3"
    for case in ["softcap_negative", "z_loss_nan", "class_weight_negative", "class_weight_kl", "z_loss_tv",
                 "softcap_sigmoid", "softcap_bce"]:
        assert out[("bad", case)] == [bad_argument, "named"], case


def test_c_program_is_clean_under_valgrind(c_output):
    exe, _ = c_output
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind is not installed")
    run = subprocess.run([valgrind, "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
                          "--errors-for-leak-kinds=definite", str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "ERROR SUMMARY: 0 errors" in run.stderr


@pytest.mark.parametrize("f", [ld.tv, ld.softmax_ce])
def test_docstring_examples_pass(f):
    import doctest

    tests = doctest.DocTestFinder().find(f, f.__name__, globs={})
    assert tests and tests[0].examples
    runner = doctest.DocTestRunner()
    for t in tests:
        runner.run(t)
    assert runner.failures == 0
