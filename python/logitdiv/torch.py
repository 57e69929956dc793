"""PyTorch integration: logitdiv's divergences and losses as differentiable functions on tensors.

Each function is a `torch.autograd.Function` over the native kernels: CPU tensors (float32,
float64, float16, bfloat16) are read in place through NumPy views (no copy), the gradients are
computed in the forward's fused pass into tensors allocated once, and backward only scales them
by grad_output (returning them untouched when grad_output is the scalar 1, as after
`loss.backward()`). Double backward (create_graph=True) is refused with a clear error. Importing `logitdiv` never
imports torch; importing `logitdiv.torch` does.

>>> import torch, logitdiv.torch as ldt
>>> s = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
>>> t = torch.randn(4, 10, dtype=torch.float64)
>>> loss = ldt.kl(s, t, reduction="batchmean")
>>> loss.backward()
>>> s.grad.shape
torch.Size([4, 10])
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from . import divergences as _D

__all__ = [
    "kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl", "gp_kl",
    "KLDivergence", "SymmetricKL", "JSDivergence", "SigmoidKL", "GlobalPointerKL",
]

_SUPPORTED = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _numpy_view(x: torch.Tensor, name: str) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (no copy); bfloat16 through ml_dtypes."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.device.type != "cpu":
        raise TypeError(
            f"{name} is on {x.device}; logitdiv.torch computes CPU tensors. CUDA tensors need the "
            "CuPy backend (pip install 'logitdiv[cuda]'), which is not available here."
        )
    if x.dtype not in _SUPPORTED:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64; got {x.dtype}")
    x = x.detach()
    if x.dtype == torch.bfloat16:
        try:
            import ml_dtypes
        except ImportError as e:
            raise TypeError("bfloat16 tensors need the ml_dtypes package (pip install 'logitdiv[torch]')") from e
        return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return x.numpy()


def _empty_like(x: torch.Tensor) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


def _refuse_double_backward() -> None:
    # backward runs with grad mode on only under create_graph=True, i.e. when a higher-order
    # gradient is wanted; the fused kernels have no derivative of their own gradient.
    if torch.is_grad_enabled():
        raise RuntimeError(
            "logitdiv.torch does not support double backward (create_graph=True): its gradients come "
            "from the fused native pass, which has no derivative of its own"
        )


def _scale(grad: torch.Tensor, grad_output: torch.Tensor, per_row: bool) -> torch.Tensor:
    if not per_row:
        if grad_output.numel() == 1 and float(grad_output) == 1.0:
            return grad  # loss.backward(): the fused pass already computed the answer
        return grad * grad_output.to(grad.dtype)
    return grad * grad_output.to(grad.dtype).unsqueeze(-1)


class _PairFunction(torch.autograd.Function):
    """value = fn(s, t, **options); gradients for s and t from the same native pass."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor, fn: Callable[..., Any], options: Dict[str, Any]):  # type: ignore[override]
        s_np, t_np = _numpy_view(s, "s"), _numpy_view(t, "t")
        ctx.per_row = options.get("reduction", "none") == "none"
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            gs, gt = _empty_like(s), _empty_like(t)
            value, _, _ = fn(s_np, t_np, grad=True, grad_out=(_numpy_view(gs, "grad"), _numpy_view(gt, "grad")), **options)
            ctx.grads = (gs, gt)
        else:
            value = fn(s_np, t_np, **options)
        return torch.from_numpy(np.asarray(value))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        _refuse_double_backward()
        gs, gt = ctx.grads
        return (
            _scale(gs, grad_output, ctx.per_row) if ctx.needs_input_grad[0] else None,
            _scale(gt, grad_output, ctx.per_row) if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


def _mask(where: Any) -> Any:
    if isinstance(where, torch.Tensor):
        return where.detach().cpu().numpy()
    return where


def _pair(fn: Callable[..., Any], s: torch.Tensor, t: torch.Tensor, **options: Any) -> torch.Tensor:
    for key in ("where", "weights"):
        if key in options and options[key] is not None:
            options[key] = _mask(options[key])
    return _PairFunction.apply(s, t, fn, options)


def kl(s: torch.Tensor, t: torch.Tensor, *, temperature: float = 1.0, where: Any = None, reduction: str = "none") -> torch.Tensor:
    """KL(softmax(s/τ) ‖ softmax(t/τ)) per row, differentiable in s and t (see `logitdiv.kl`)."""
    return _pair(_D.kl, s, t, temperature=temperature, where=where, reduction=reduction)


def sym_kl(s: torch.Tensor, t: torch.Tensor, *, temperature: float = 1.0, where: Any = None, reduction: str = "none") -> torch.Tensor:
    """KL(p‖q) + KL(q‖p) per row, differentiable (see `logitdiv.sym_kl`)."""
    return _pair(_D.sym_kl, s, t, temperature=temperature, where=where, reduction=reduction)


def js(s: torch.Tensor, t: torch.Tensor, *, beta: float = 0.5, temperature: float = 1.0, where: Any = None,
       reduction: str = "none") -> torch.Tensor:
    """β KL(p‖m) + (1−β) KL(q‖m) per row, differentiable (see `logitdiv.js`)."""
    return _pair(_D.js, s, t, beta=beta, temperature=temperature, where=where, reduction=reduction)


def sigmoid_kl(s: torch.Tensor, t: torch.Tensor, *, weights: Any = None, temperature: float = 1.0, where: Any = None,
               reduction: str = "none") -> torch.Tensor:
    """Σ_i w_i KL(Bern(σ(s_i/τ)) ‖ Bern(σ(t_i/τ))) per row, differentiable (see `logitdiv.sigmoid_kl`)."""
    return _pair(_D.sigmoid_kl, s, t, weights=weights, temperature=temperature, where=where, reduction=reduction)


def sigmoid_sym_kl(s: torch.Tensor, t: torch.Tensor, *, weights: Any = None, temperature: float = 1.0,
                   where: Any = None, reduction: str = "none") -> torch.Tensor:
    """The GlobalPointer KL Σ_i w_i (σ(s'_i) − σ(t'_i))(s'_i − t'_i), differentiable (see `logitdiv.sigmoid_sym_kl`)."""
    return _pair(_D.sigmoid_sym_kl, s, t, weights=weights, temperature=temperature, where=where, reduction=reduction)


gp_kl = sigmoid_sym_kl


class _PairModule(torch.nn.Module):
    _fn: Callable[..., torch.Tensor]

    def __init__(self, *, reduction: str = "batchmean", temperature: float = 1.0, **options: Any) -> None:
        super().__init__()
        self.reduction = reduction
        self.temperature = temperature
        self.options = options

    def forward(self, s: torch.Tensor, t: torch.Tensor, where: Optional[Any] = None) -> torch.Tensor:
        return type(self)._fn(s, t, temperature=self.temperature, where=where, reduction=self.reduction, **self.options)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"reduction={self.reduction!r}, temperature={self.temperature}{extra}"


class KLDivergence(_PairModule):
    """`KLDivergence(reduction="batchmean", temperature=1.0)(s, t)` = KL(softmax(s/τ) ‖ softmax(t/τ)).

    Note the argument order: the first argument is the distribution the expectation is taken
    under, unlike `torch.nn.KLDivLoss(input=log q, target=p)`."""

    _fn = staticmethod(kl)


class SymmetricKL(_PairModule):
    """`SymmetricKL(reduction="batchmean")(s, t)` = KL(p‖q) + KL(q‖p), the R-Drop regulariser."""

    _fn = staticmethod(sym_kl)


class JSDivergence(_PairModule):
    """`JSDivergence(beta=0.5, reduction="batchmean")(s, t)`."""

    _fn = staticmethod(js)

    def __init__(self, *, beta: float = 0.5, reduction: str = "batchmean", temperature: float = 1.0) -> None:
        super().__init__(reduction=reduction, temperature=temperature, beta=beta)


class SigmoidKL(_PairModule):
    """`SigmoidKL(weights=None, reduction="batchmean")(s, t)`: per-class Bernoulli KL."""

    _fn = staticmethod(sigmoid_kl)

    def __init__(self, *, weights: Any = None, reduction: str = "batchmean", temperature: float = 1.0) -> None:
        super().__init__(reduction=reduction, temperature=temperature, weights=weights)


class GlobalPointerKL(_PairModule):
    """`GlobalPointerKL(reduction="batchmean")(s, t)`: Σ (σ(s) − σ(t))(s − t), for GlobalPointer R-Drop."""

    _fn = staticmethod(sigmoid_sym_kl)

    def __init__(self, *, weights: Any = None, reduction: str = "batchmean", temperature: float = 1.0) -> None:
        super().__init__(reduction=reduction, temperature=temperature, weights=weights)


