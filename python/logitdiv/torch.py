"""PyTorch integration: logitdiv's divergences and losses as differentiable functions on tensors.

Each function is a PyTorch custom operator, ``torch.ops.logitdiv.<name>`` (fake and autograd
registrations, so torch.compile, torch.export and make_fx keep it in their graphs); an eager call
runs the operator's own compute and backward as a `torch.autograd.Function` without the
dispatcher's Python layers (`_direct`). CPU tensors (float32, float64, float16, bfloat16) are
read in place through NumPy views (no copy), the gradients are computed in the forward's fused
pass into tensors allocated once (in NumPy memory: huge pages), and backward only scales them by
grad_output (returning them untouched when grad_output is the scalar 1, as after
`loss.backward()`). Double backward (create_graph=True) is refused with a clear error. Importing
`logitdiv` never imports torch; importing `logitdiv.torch` does.

Labels (class indices, positives, spans, masks, weights) may be tensors or arrays; they are
never differentiated. Probability targets are not differentiated either: a target tensor that
requires grad gets no gradient (PyTorch's ``F.cross_entropy`` would give it one).

Reductions: the functions here default to ``reduction="none"`` (one value per row), like the
rest of logitdiv; the ``nn.Module`` losses default to ``"mean"``, like PyTorch's loss modules.

CUDA tensors go to the CuPy backend, ``logitdiv.cuda``, through DLPack (zero-copy) when CuPy is
installed (``pip install 'logitdiv[cuda]'``; without it they are a clear TypeError); see
`_backend_for`. The GPU backend has kernels for the divergences, `softmax_ce`, `bce` and
`multilabel_ce`; the other losses raise NotImplementedError for CUDA tensors.

>>> import torch, logitdiv.torch as ldt
>>> s = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
>>> t = torch.randn(4, 10, dtype=torch.float64)
>>> loss = ldt.kl(s, t, reduction="batchmean")
>>> loss.backward()
>>> s.grad.shape
torch.Size([4, 10])
>>> y = torch.tensor([1, 0, 3, 9])
>>> ldt.CrossEntropyLoss(label_smoothing=0.1)(s, y).backward()   # reduction="mean", as in torch
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

import logitdiv as _ld
from logitdiv import _arrays as A

__all__ = [
    # divergences
    "kl", "sym_kl", "js", "tv", "sigmoid_kl", "sigmoid_sym_kl", "gp_kl",
    "KLDivergence", "SymmetricKL", "JSDivergence", "TVDistance", "SigmoidKL", "GlobalPointerKL",
    # losses
    "softmax_ce", "bce", "multilabel_ce", "sparse_multilabel_ce", "globalpointer_ce", "gamma_ce",
    "kd_loss", "rdrop_loss",
    "CrossEntropyLoss", "BCEWithLogitsLoss", "MultilabelCrossEntropy", "SparseMultilabelCrossEntropy",
    "GlobalPointerLoss", "GammaCrossEntropy", "DistillationLoss", "RDropLoss",
]

_SUPPORTED = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


# ----------------------------------------------------------------------------------------------
# backends: where a call's tensors are computed


def _check_float(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in _SUPPORTED:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64; got {x.dtype}")
    return x


def _numpy_view(x: torch.Tensor, name: str) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (no copy); bfloat16 through ml_dtypes."""
    _check_float(x, name)
    if x.device.type != "cpu":
        raise TypeError(f"{name} is on {x.device}; a NumPy view needs a CPU tensor")
    return A.torch_to_numpy(x)


class _CPU:
    """The native core through logitdiv's NumPy API, reading and writing tensors in place."""

    @staticmethod
    def array(x: torch.Tensor, name: str) -> np.ndarray:
        # a float CPU tensor (`_backend_for` checked it); bfloat16 needs ml_dtypes
        return A.torch_to_numpy(x) if x.dtype is torch.bfloat16 else x.detach().numpy()

    @staticmethod
    def aux(x: Any, name: str) -> Any:
        """A label-like argument (never differentiated) as the NumPy API takes it: integer and bool
        tensors through ``.cpu().numpy()`` (they are small), float ones as views (zero-copy)."""
        if not isinstance(x, torch.Tensor):
            return x
        if not x.is_floating_point() and x.device.type == "cpu":
            return x.numpy()  # never requires grad
        x = x.detach().cpu()
        return _numpy_view(x, name) if x.is_floating_point() else x.numpy()

    @staticmethod
    def function(name: str) -> Callable[..., Any]:
        return getattr(_ld, name)  # looked up per call, so a test can watch what the core receives

    @staticmethod
    def tensor(value: Any, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(np.asarray(value))

    @staticmethod
    def empty(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, np.ndarray]:
        """An output buffer in NumPy's memory, as (tensor, the array the NumPy API writes): NumPy
        advises the kernel to back large arrays with huge pages, so the first write of a gradient
        (the kernel's, once per step: autograd frees the last one) takes a fault per 2 MiB instead
        of per 4 KiB. On the 2-core machine that is 73 ms against 218 ms for a (2048, 32000)
        float32 softmax CE step."""
        array = np.empty(shape, _np_dtype(dtype))
        if dtype == torch.bfloat16:
            return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16), array
        return torch.from_numpy(array), array


class _DLPack:
    """A GPU backend module with the NumPy API's functions over CuPy arrays (``logitdiv.cuda``),
    reached through DLPack: tensors are shared with CuPy, not copied."""

    def __init__(self, module: Any) -> None:
        self.module = module

    @staticmethod
    def array(x: torch.Tensor, name: str) -> Any:
        import cupy

        return cupy.from_dlpack(_check_float(x, name).detach())

    def aux(self, x: Any, name: str) -> Any:
        return x  # the backend module takes host or device labels as it sees fit

    def function(self, name: str) -> Callable[..., Any]:
        return getattr(self.module, name)

    @staticmethod
    def tensor(value: Any, device: torch.device) -> torch.Tensor:
        if hasattr(value, "__dlpack__"):
            return torch.from_dlpack(value)
        return torch.as_tensor(value, device=device)  # a reduced value returned as a host scalar

    @staticmethod
    def empty(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, Any]:
        """An output buffer from torch's caching allocator, as (tensor, its CuPy view)."""
        buffer = torch.empty(shape, dtype=dtype, device=device)
        return buffer, _DLPack.array(buffer, "grad")


_GPU_BACKEND = "logitdiv.cuda"


def _cuda_backend() -> Any:
    """`_DLPack` over ``logitdiv.cuda`` where that module and CuPy exist, else None."""
    if importlib.util.find_spec(_GPU_BACKEND) is None or importlib.util.find_spec("cupy") is None:
        return None
    return _DLPack(importlib.import_module(_GPU_BACKEND))


# device type -> a function giving its backend (or None where it is not available)
_BACKENDS: Dict[str, Callable[[], Any]] = {"cpu": lambda: _CPU, "cuda": _cuda_backend}


def _backend_for(tensors: Sequence[torch.Tensor], names: Sequence[str]) -> Any:
    """The backend that computes these logits: `_CPU` for CPU tensors, `_DLPack` over
    ``logitdiv.cuda`` for CUDA tensors when that module exists; a TypeError otherwise."""
    for x, name in zip(tensors, names):
        _check_float(x, name)
    device = tensors[0].device
    for x, name in zip(tensors[1:], names[1:]):
        if x.device != device:
            raise TypeError(f"{names[0]} is on {device} but {name} is on {x.device}; put them on one device")
    make = _BACKENDS.get(device.type)
    backend = make() if make is not None else None
    if backend is None:
        raise TypeError(
            f"{names[0]} is on {device}; logitdiv.torch computes CPU tensors. CUDA tensors need the "
            "CuPy backend (pip install 'logitdiv[cuda]'), which is not available here."
        )
    return backend


# ----------------------------------------------------------------------------------------------
# the custom operators: torch.ops.logitdiv.<name>, one per function of the NumPy API


class _Call(NamedTuple):
    """One call of a NumPy-API function: ``fn(*logits, *labels, **options)``."""

    name: str                         # the function of logitdiv's API, e.g. "softmax_ce"
    logits: Tuple[str, ...]           # names of the differentiable inputs (1 or 2)
    labels: Tuple[str, ...] = ()      # names of the positional labels that follow them
    options: Dict[str, Any] = {}      # keyword options; tensors among them are never differentiated
    optional_grad: Optional[str] = None  # flag that asks for the second input's gradient (kd_loss)


class _Schema(NamedTuple):
    """The operator's arguments after the logits: (type, name) pairs in schema types."""

    labels: Tuple[Tuple[str, str], ...]
    options: Tuple[Tuple[str, str], ...]
    optional_grad: Optional[str] = None
    # options added later, after the gradient flags and with defaults (type, name, default in
    # the schema, default in Python), so that calls written for the earlier schema keep working
    late: Tuple[Tuple[str, str, str, Any], ...] = ()
    # extra outputs after the gradients (never differentiated): (output, the flag asking for it);
    # an output not asked for is an empty tensor
    extras: Tuple[Tuple[str, str], ...] = ()


_WHERE, _RED = ("Tensor?", "where"), ("str", "reduction")
_T = ("float", "temperature")
_CE = (("float", "label_smoothing"), ("int", "ignore_index"))
_CAP = (("float?", "softcap", "None", None),)
_LOGITS = {"kl": ("s", "t"), "sym_kl": ("s", "t"), "js": ("s", "t"), "tv": ("s", "t"), "sigmoid_kl": ("s", "t"),
           "sigmoid_sym_kl": ("s", "t"), "kd_loss": ("student", "teacher"), "rdrop_loss": ("s1", "s2")}
_SCHEMAS: Dict[str, _Schema] = {
    "kl": _Schema((), (_T, _WHERE, _RED), late=_CAP),
    "sym_kl": _Schema((), (_T, _WHERE, _RED), late=_CAP),
    "js": _Schema((), (("float", "beta"), _T, _WHERE, _RED), late=_CAP),
    "tv": _Schema((), (_T, _WHERE, _RED), late=_CAP),
    "sigmoid_kl": _Schema((), (("Tensor?", "weights"), _T, _WHERE, _RED)),
    "sigmoid_sym_kl": _Schema((), (("Tensor?", "weights"), _T, _WHERE, _RED)),
    "softmax_ce": _Schema((("Tensor", "target"),), (*_CE, _T, _WHERE, _RED), late=(
        ("Tensor?", "weight", "None", None), ("float", "z_loss", "0.0", 0.0), *_CAP,
        ("bool", "return_z_loss", "False", False), ("bool", "return_accuracy", "False", False)), extras=(("z_loss", "return_z_loss"), ("accuracy", "return_accuracy"))),
    "bce": _Schema((("Tensor", "target"),), (("Tensor?", "pos_weight"), ("Tensor?", "weights"), _WHERE, _RED)),
    "multilabel_ce": _Schema((("Tensor", "target"),), (_WHERE, _RED)),
    "sparse_multilabel_ce": _Schema((("Tensor", "positives"),), (("int", "pad"), _WHERE, _RED)),
    "globalpointer_ce": _Schema((("Tensor", "spans_or_positives"),), (("Tensor?", "mask"), ("int", "pad"), _RED)),
    "gamma_ce": _Schema((("Tensor", "target"),), (("float", "gamma"), ("float?", "threshold"), ("int", "ignore_index"),
                                                  _WHERE, _RED)),
    "kd_loss": _Schema((("Tensor?", "target"),), (_T, ("float", "alpha"), ("bool", "t2"), *_CE, _WHERE, _RED),
                       optional_grad="grad_teacher"),
    "rdrop_loss": _Schema((("Tensor", "target"),), (("float", "alpha"), ("str", "kind"), *_CE, _WHERE, _RED)),
}

_LIB = torch.library.Library("logitdiv", "DEF")


@functools.lru_cache(maxsize=None)
def _np_dtype(dtype: torch.dtype) -> np.dtype:
    if dtype == torch.bfloat16:
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(str(dtype).replace("torch.", ""))


_TORCH_DTYPE = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32,
                np.dtype(np.float64): torch.float64}


def _dtypes(logits: Sequence[torch.Tensor]) -> Tuple[torch.dtype, torch.dtype]:
    """(gradient dtype, value dtype) of a call, by the NumPy API's rules (`logitdiv._arrays`)."""
    return _dtypes_of(tuple(x.dtype for x in logits))


@functools.lru_cache(maxsize=None)
def _dtypes_of(dtypes: Tuple[torch.dtype, ...]) -> Tuple[torch.dtype, torch.dtype]:
    arrays = [np.empty(0, _np_dtype(d)) for d in dtypes]
    common = arrays[0].dtype if len(arrays) == 1 else A.common_dtype(*arrays)
    grad = dtypes[0] if common.name == "bfloat16" else _TORCH_DTYPE[common]
    return grad, _TORCH_DTYPE[A.value_dtype(common)]


def _n_early(name: str, schema: _Schema) -> int:
    """The number of arguments before the late options."""
    return (len(_LOGITS.get(name, ("logits",))) + len(schema.labels) + len(schema.options)
            + (2 if schema.optional_grad else 1))


def _full(name: str, schema: _Schema, args: Sequence[Any], kwargs: Optional[Dict[str, Any]] = None) -> list:
    """Every argument of a call in schema order: the late options a caller left out (they have
    defaults, and may arrive as keywords) filled in."""
    n = _n_early(name, schema)
    if not kwargs and len(args) == n + len(schema.late):
        return list(args)
    full = list(args[:n])
    kwargs = kwargs or {}
    for j, (_, key, _, default) in enumerate(schema.late):
        full.append(args[n + j] if n + j < len(args) else kwargs.get(key, default))
    return full


def _grad_flags(schema: _Schema, args: Sequence[Any]) -> Tuple[bool, bool]:
    """(any gradient, the second input's gradient) from the flags after the options (`args`: a
    full argument list, see `_full`)."""
    first = len(args) - len(schema.late) - (2 if schema.optional_grad else 1)
    if schema.optional_grad is None:
        return bool(args[first]), bool(args[first])
    return bool(args[first]), bool(args[first + 1])


def _late(schema: _Schema, args: Sequence[Any]) -> Dict[str, Any]:
    """The late options of a full argument list, by name."""
    return dict(zip((n for _, n, _, _ in schema.late), args[len(args) - len(schema.late):]))


def _define(name: str) -> None:
    schema = _SCHEMAS[name]
    logits = _LOGITS.get(name, ("logits",))
    k, n_labels = len(logits), len(schema.labels)
    flags = ["bool grad"] + ([f"bool {schema.optional_grad}"] if schema.optional_grad else [])
    params = [f"Tensor {n}" for n in logits] + [f"{t} {n}" for t, n in (*schema.labels, *schema.options)] + flags
    params += [f"{t} {n}={d}" for t, n, d, _ in schema.late]
    _LIB.define(f"{name}({', '.join(params)}) -> ({', '.join(['Tensor'] * (1 + k + len(schema.extras)))})")
    qualname = f"logitdiv::{name}"
    n_options = len(schema.options)
    option_names = [n for _, n in schema.options]
    at_reduction = k + n_labels + option_names.index("reduction")

    def extras_wanted(args: Sequence[Any]) -> list:
        late = _late(schema, args)
        return [bool(late[flag]) for _, flag in schema.extras]

    def run(xs: Sequence[torch.Tensor], labels: Sequence[Any], options: Dict[str, Any], want: bool,
            want_second: bool, wanted_extras: Sequence[bool]) -> Tuple[torch.Tensor, list, list]:
        """One call of the NumPy API's function on its backend: (value, the gradients computed (k,
        or 1 when kd_loss' teacher needs none; none without `want`), the extras asked for)."""
        backend = _backend_for(xs, logits)
        fn = backend.function(name)
        arrays = [backend.array(x, n) for x, n in zip(xs, logits)]
        aux = [backend.aux(y, n) for y, (_, n) in zip(labels, schema.labels)]
        options = {key: backend.aux(v, key) if isinstance(v, torch.Tensor) else v for key, v in options.items()}
        device = xs[0].device
        n_extras = sum(wanted_extras)
        grads: list = []
        if not want:
            res = fn(*arrays, *aux, **options)
            value, got = (res[0], res[1:]) if n_extras else (res, ())
        else:
            n_grads = k
            if schema.optional_grad is not None:
                n_grads = 2 if want_second else 1
                options[schema.optional_grad] = want_second
            dtype = _dtypes(xs)[0]
            buffers = [backend.empty(tuple(xs[0].shape), dtype, device) for _ in range(n_grads)]
            grads = [tensor for tensor, _ in buffers]
            res = fn(*arrays, *aux, grad=True, grad_out=tuple(array for _, array in buffers), **options)
            value, got = res[0], res[1:1 + n_extras]
        return backend.tensor(value, device), grads, [backend.tensor(g, device) for g in got]

    def compute(*args: Any, **kwargs: Any) -> Tuple[torch.Tensor, ...]:
        """The operator's implementation: every output of the schema, the ones not asked for empty."""
        args = tuple(_full(name, schema, args, kwargs))
        xs, labels = args[:k], args[k:k + n_labels]
        options = dict(zip(option_names, args[k + n_labels:k + n_labels + n_options]))
        options.update(_late(schema, args))
        want, want_second = _grad_flags(schema, args)
        wanted_extras = extras_wanted(args)
        value, grads, got = run(xs, labels, options, want, want_second, wanted_extras)
        dtype, vdtype = _dtypes(xs)
        device = xs[0].device
        grads += [torch.empty(0, dtype=dtype, device=device) for _ in range(k - len(grads))]
        it = iter(got)
        extras = [next(it) if w else torch.empty(0, dtype=vdtype, device=device) for w in wanted_extras]
        return (value, *grads, *extras)

    def fake(*args: Any, **kwargs: Any) -> Tuple[torch.Tensor, ...]:
        args = tuple(_full(name, schema, args, kwargs))
        xs = args[:k]
        dtype, vdtype = _dtypes(xs)
        reduction = args[at_reduction]
        value = xs[0].new_empty(A.value_shape(name, tuple(xs[0].shape), reduction), dtype=vdtype)
        want, want_second = _grad_flags(schema, args)
        wanted = [want] + [want_second] * (k - 1)
        extras = [value.new_empty(value.shape if w else (0,)) for w in extras_wanted(args)]
        return (value, *(xs[0].new_empty(xs[0].shape if w else (0,), dtype=dtype) for w in wanted), *extras)

    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[torch.Tensor, ...]) -> None:
        ctx.mark_non_differentiable(*output[1:])
        # the gradient outputs get no gradient: without this autograd would hand backward a
        # tensor of zeros the size of the logits for each of them
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*output[1:1 + k])
        ctx.n_inputs = len(inputs)
        inputs = tuple(_full(name, schema, inputs))
        ctx.dtypes = tuple(x.dtype for x in inputs[:k])
        want, want_second = _grad_flags(schema, inputs)
        ctx.have = [bool(want)] + [bool(want_second)] * (k - 1)
        ctx.per_row = inputs[at_reduction] == "none"

    def backward(ctx: Any, grad_value: Optional[torch.Tensor], *_: Any) -> Tuple[Optional[torch.Tensor], ...]:
        if grad_value is None:  # only an extra output was used, and it is not differentiable
            return (None,) * ctx.n_inputs
        eager = _is_eager(grad_value)
        if eager:
            _refuse_double_backward()
        saved = ctx.saved_tensors
        # In eager mode, unless the graph is kept for another backward, the buffers are scaled in
        # place and handed over: autograd then moves a leaf's gradient into .grad, no copy.
        in_place = eager and not _graph_is_kept()
        out: list = [None] * ctx.n_inputs
        for i, dtype in enumerate(ctx.dtypes):
            if ctx.needs_input_grad[i]:
                if not ctx.have[i]:
                    raise RuntimeError(f"{qualname} was called without the gradient flag for input {i}")
                out[i] = _scale(saved[i], grad_value, ctx.per_row, in_place, eager).to(dtype)
        return tuple(out)

    _LIB.impl(name, compute, "CompositeExplicitAutograd")
    torch.library.register_fake(qualname, fake, lib=_LIB)
    torch.library.register_autograd(qualname, backward, setup_context=setup_context, lib=_LIB)

    # The same computation as one autograd.Function, for eager calls (see `_direct`). It takes the
    # call as `_apply` prepared it (labels, options and flags as they are, not the schema's flat
    # argument list) and returns only the value and the extras asked for: the gradients stay on
    # ctx (they are neither inputs nor outputs), so backward hands them to autograd untouched.
    def direct_forward(ctx: Any, *args: Any) -> Any:
        xs = args[:k]
        labels, options, want, want_second, wanted_extras = args[k:]
        value, grads, extras = run(xs, labels, options, want, want_second, wanted_extras)
        ctx.grads, ctx.dtypes, ctx.per_row = grads, [x.dtype for x in xs], options["reduction"] == "none"
        if not extras:
            return value
        ctx.set_materialize_grads(False)  # the extras get no gradient, not one of zeros
        ctx.mark_non_differentiable(*extras)
        return (value, *extras)

    def direct_backward(ctx: Any, grad_value: Optional[torch.Tensor], *_: Any) -> Tuple[Optional[torch.Tensor], ...]:
        out: list = [None] * (k + 5)
        if grad_value is None:  # only an extra output was used, and it is not differentiable
            return tuple(out)
        eager = _is_eager(grad_value)
        if eager:
            _refuse_double_backward()
        grads = ctx.grads
        in_place = eager and not _graph_is_kept()
        if in_place:
            ctx.grads = None  # handed over: with no other reference, autograd moves them into .grad
        for i, dtype in enumerate(ctx.dtypes):
            if ctx.needs_input_grad[i]:
                if i >= len(grads):
                    raise RuntimeError(f"{qualname} was called without the gradient flag for input {i}")
                out[i] = _scale(grads[i], grad_value, ctx.per_row, in_place, eager).to(dtype)
        return tuple(out)

    _RUN[name] = run
    _DIRECT[name] = type(f"{name}_direct", (torch.autograd.Function,), {
        "forward": staticmethod(direct_forward), "backward": staticmethod(direct_backward)})


# name -> the eager form of the operator: an autograd.Function, and its computation alone (for
# calls that need no gradient)
_DIRECT: Dict[str, Any] = {}
_RUN: Dict[str, Callable[..., Tuple[torch.Tensor, list, list]]] = {}


def _direct(xs: Sequence[torch.Tensor]) -> bool:
    """Whether a call may skip the dispatcher and run `_DIRECT`'s autograd.Function: plain (not meta)
    tensors, eagerly — nothing traces it (torch.compile, export, make_fx, a dispatch or function
    mode) and no torch.func transform wraps it; those need the operator. The Python autograd
    layer of torch.library costs ~100 µs a call (it rebuilds the schema's argument list per
    argument), more than the kernel of a (32, 1000) batch."""
    # is_compiling first: dynamo reads it as a constant and never traces the rest
    return (not torch.compiler.is_compiling() and all(type(x) is torch.Tensor and not x.is_meta for x in xs)
            and torch._C._len_torch_dispatch_stack() == 0 and not torch._C._is_torch_function_mode_enabled()
            and torch._C._functorch.peek_interpreter_stack() is None)


def _is_eager(t: torch.Tensor) -> bool:
    """Whether backward runs eagerly on a real tensor (not traced by torch.compile, export or make_fx)."""
    return (type(t) is torch.Tensor and torch._C._len_torch_dispatch_stack() == 0
            and not torch.compiler.is_compiling())


def _refuse_double_backward() -> None:
    # backward runs with grad mode on only under create_graph=True, i.e. when a higher-order
    # gradient is wanted; the fused kernels have no derivative of their own gradient.
    if torch.is_grad_enabled():
        raise RuntimeError(
            "logitdiv.torch does not support double backward (create_graph=True): its gradients come "
            "from the fused native pass, which has no derivative of its own"
        )


def _graph_is_kept() -> bool:
    """Whether the running backward keeps the graph (retain_graph=True, as gradcheck and repeated
    ``autograd.grad`` calls do) and so may come back for the gradients. A private function of
    torch's, which its AOT autograd asks for the same purpose; where it is missing, assume so."""
    keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if keep_graph is None else bool(keep_graph())


def _scale(grad: torch.Tensor, grad_output: torch.Tensor, per_row: bool, in_place: bool, eager: bool) -> torch.Tensor:
    """grad · grad_output; per-row values (shape = the leading axes, or (B, heads) for
    GlobalPointer) broadcast over the remaining axes."""
    if eager and not per_row and grad_output.numel() == 1 and float(grad_output) == 1.0:
        return grad  # loss.backward(): the fused pass already computed the answer
    g = grad_output.to(grad.dtype)
    if per_row:
        g = g.reshape(tuple(g.shape) + (1,) * (grad.ndim - g.ndim))
    return grad.mul_(g) if in_place else grad * g


for _name in _SCHEMAS:
    _define(_name)
del _name


def _as_tensor(x: Any) -> Any:
    """A label, mask or weight as the operators take it: tensors as they are, None kept, the rest
    (arrays, lists, numbers) through torch.as_tensor."""
    return x if x is None or isinstance(x, torch.Tensor) else torch.as_tensor(x)


def _option(kind: str, name: str, value: Any) -> Any:
    """An option in its schema type, or the TypeError the NumPy API would raise for it: the
    dispatcher's own error for a mistyped argument is a RuntimeError. Ranges stay core's rule."""
    if type(value) is float and kind == "float" or type(value) is str and kind == "str":
        return value  # the common case, as it is
    if kind.startswith("Tensor"):
        return _as_tensor(value)
    if kind.endswith("?") and value is None:
        return None
    base = kind.rstrip("?")
    if base == "float":
        return A.check_number(value, name)
    if base == "int":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer; got {value!r}"[:200])
        return int(value)
    if base == "bool":
        return bool(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string; got {value!r}"[:200])
    return value


def _apply(call: _Call, *inputs: Any) -> Any:
    """``torch.ops.logitdiv.<name>`` on these inputs; asks for the gradients the inputs need."""
    k = len(call.logits)
    for x, n in zip(inputs[:k], call.logits):
        _check_float(x, n)
    schema = _SCHEMAS[call.name]
    grad_on = torch.is_grad_enabled()
    wanted = [grad_on and x.requires_grad for x in inputs[:k]]
    flags = [any(wanted)] + ([wanted[1]] if schema.optional_grad else [])
    named = {n: _option(t, n, call.options[n]) for t, n in schema.options}
    late = {n: _option(t, n, call.options[n]) for t, n, _, _ in schema.late if n in call.options}
    labels = [_as_tensor(y) for y in inputs[k:]]
    if _direct(inputs[:k]):
        named.update(late)
        wanted_extras = [bool(late.get(flag)) for _, flag in schema.extras]
        if not flags[0]:  # nothing to differentiate: no graph node
            value, _, extras = _RUN[call.name](inputs[:k], labels, named, False, False, wanted_extras)
            return (value, *extras) if extras else value
        return _DIRECT[call.name].apply(*inputs[:k], labels, named, flags[0], flags[-1], wanted_extras)
    out = getattr(torch.ops.logitdiv, call.name)(*inputs[:k], *labels, *named.values(), *flags, **late)
    extras = [out[1 + k + j] for j, (_, flag) in enumerate(schema.extras) if late.get(flag)]
    return (out[0], *extras) if extras else out[0]


# ----------------------------------------------------------------------------------------------
# divergences


def _pair(name: str, s: torch.Tensor, t: torch.Tensor, **options: Any) -> torch.Tensor:
    return _apply(_Call(name, ("s", "t"), options=options), s, t)


def _cap(softcap: Optional[float]) -> Dict[str, Any]:
    # passed only when set, so a call without it is the operator call of the earlier schema
    return {} if softcap is None else {"softcap": softcap}


def kl(s: torch.Tensor, t: torch.Tensor, *, temperature: float = 1.0, where: Any = None, reduction: str = "none",
       softcap: Optional[float] = None) -> torch.Tensor:
    """KL(softmax(s/τ) ‖ softmax(t/τ)) per row, differentiable in s and t (see `logitdiv.kl`);
    `softcap` c caps both inputs at c · tanh(x / c) first."""
    return _pair("kl", s, t, temperature=temperature, where=where, reduction=reduction, **_cap(softcap))


def sym_kl(s: torch.Tensor, t: torch.Tensor, *, temperature: float = 1.0, where: Any = None, reduction: str = "none",
           softcap: Optional[float] = None) -> torch.Tensor:
    """KL(p‖q) + KL(q‖p) per row, differentiable (see `logitdiv.sym_kl`)."""
    return _pair("sym_kl", s, t, temperature=temperature, where=where, reduction=reduction, **_cap(softcap))


def js(s: torch.Tensor, t: torch.Tensor, *, beta: float = 0.5, temperature: float = 1.0, where: Any = None,
       reduction: str = "none", softcap: Optional[float] = None) -> torch.Tensor:
    """β KL(p‖m) + (1−β) KL(q‖m) per row, differentiable (see `logitdiv.js`)."""
    return _pair("js", s, t, beta=beta, temperature=temperature, where=where, reduction=reduction, **_cap(softcap))


def tv(s: torch.Tensor, t: torch.Tensor, *, temperature: float = 1.0, where: Any = None, reduction: str = "none",
       softcap: Optional[float] = None) -> torch.Tensor:
    """The total variation distance ½ Σ |p − q| per row, with its subgradients in s and t (see
    `logitdiv.tv`); Liger-Kernel's ``LigerTVDLoss`` takes probabilities, this takes logits."""
    return _pair("tv", s, t, temperature=temperature, where=where, reduction=reduction, **_cap(softcap))


def sigmoid_kl(s: torch.Tensor, t: torch.Tensor, *, weights: Any = None, temperature: float = 1.0, where: Any = None,
               reduction: str = "none") -> torch.Tensor:
    """Σ_i w_i KL(Bern(σ(s_i/τ)) ‖ Bern(σ(t_i/τ))) per row, differentiable (see `logitdiv.sigmoid_kl`)."""
    return _pair("sigmoid_kl", s, t, weights=weights, temperature=temperature, where=where, reduction=reduction)


def sigmoid_sym_kl(s: torch.Tensor, t: torch.Tensor, *, weights: Any = None, temperature: float = 1.0,
                   where: Any = None, reduction: str = "none") -> torch.Tensor:
    """The GlobalPointer KL Σ_i w_i (σ(s'_i) − σ(t'_i))(s'_i − t'_i), differentiable (see `logitdiv.sigmoid_sym_kl`)."""
    return _pair("sigmoid_sym_kl", s, t, weights=weights, temperature=temperature, where=where, reduction=reduction)


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


class TVDistance(_PairModule):
    """`TVDistance(reduction="batchmean", temperature=1.0, softcap=None)(s, t)` = ½ Σ |p − q|."""

    _fn = staticmethod(tv)

    def __init__(self, *, reduction: str = "batchmean", temperature: float = 1.0, softcap: Optional[float] = None) -> None:
        super().__init__(reduction=reduction, temperature=temperature, softcap=softcap)


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


# ----------------------------------------------------------------------------------------------
# losses: functions (reduction="none" by default, as in logitdiv's NumPy API)

_FUNCTIONAL_NOTE = """
    Differentiable in the logits only: labels, masks and weights (tensors or arrays) are
    not differentiated, and neither is a probability target that requires grad (no gradient). ``reduction`` defaults to
    ``"none"`` (one value per row), logitdiv's convention; the module form defaults to ``"mean"``
    as PyTorch's loss modules do.
"""


def softmax_ce(logits: torch.Tensor, target: Any, *, label_smoothing: float = 0.0, ignore_index: int = -100,
               temperature: float = 1.0, weight: Any = None, z_loss: float = 0.0, softcap: Optional[float] = None,
               return_z_loss: bool = False, return_accuracy: bool = False, where: Any = None,
               reduction: str = "none") -> Any:
    """Softmax cross-entropy per row, differentiable in `logits` (see `logitdiv.softmax_ce`).

    `target`: integer class indices of the leading shape (``ignore_index`` rows are ignored) or
    class probabilities of the logits' shape (not differentiated). Classes are on the last axis
    (torch's ``F.cross_entropy`` puts them on axis 1 for inputs of more than 2 axes). With
    ``reduction="mean"`` it equals ``F.cross_entropy(logits, target, weight=w, label_smoothing=ε,
    ignore_index=i)`` (with class indices and `weight`, the sum divided by Σ w_y over the rows not
    ignored). `z_loss` (Liger-Kernel's ``lse_square_scale``) adds z · lse² per row, `softcap` caps
    the logits at c · tanh(x / c) first. With ``return_z_loss`` / ``return_accuracy`` it returns
    the tuple (loss, [z_term], [accuracy]) of what was asked for; those extras are not
    differentiable (the z-term's gradient is in the loss's).
    """
    late: Dict[str, Any] = {}
    if weight is not None:
        late["weight"] = weight
    if z_loss != 0.0:
        late["z_loss"] = z_loss
    if softcap is not None:
        late["softcap"] = softcap
    if return_z_loss:
        late["return_z_loss"] = True
    if return_accuracy:
        late["return_accuracy"] = True
    return _apply(_Call("softmax_ce", ("logits",), ("target",), dict(
        label_smoothing=label_smoothing, ignore_index=ignore_index, temperature=temperature, where=where,
        reduction=reduction, **late)), logits, target)


def bce(logits: torch.Tensor, target: Any, *, pos_weight: Any = None, weights: Any = None, where: Any = None,
        reduction: str = "none") -> torch.Tensor:
    """Binary cross-entropy with logits, summed over the classes of each row, differentiable in
    `logits` (see `logitdiv.bce`).

    Per row: ``F.binary_cross_entropy_with_logits(logits, target, weight=weights,
    pos_weight=pos_weight, reduction="none").sum(-1)``. So "mean" here is the mean over rows of the
    per-row sums, C times PyTorch's "mean" over every element; `BCEWithLogitsLoss` (the module)
    follows PyTorch's. `target`, `pos_weight` and `weights` are not differentiated.
    """
    return _apply(_Call("bce", ("logits",), ("target",), dict(
        pos_weight=pos_weight, weights=weights, where=where, reduction=reduction)), logits, target)


def multilabel_ce(logits: torch.Tensor, target: Any, *, where: Any = None, reduction: str = "none") -> torch.Tensor:
    """Su's multilabel softmax cross-entropy per row, log(1 + Σ_neg e^{s}) + log(1 + Σ_pos e^{−s})
    for 0/1 labels (soft labels in [0, 1] too; not differentiated), differentiable in `logits`
    (see `logitdiv.multilabel_ce`)."""
    return _apply(_Call("multilabel_ce", ("logits",), ("target",), dict(where=where, reduction=reduction)),
                  logits, target)


def sparse_multilabel_ce(logits: torch.Tensor, positives: Any, *, pad: int = -1, where: Any = None,
                         reduction: str = "none") -> torch.Tensor:
    """`multilabel_ce` with the positives as class indices, shape (..., K), padded with `pad`;
    differentiable in `logits` (see `logitdiv.sparse_multilabel_ce`)."""
    return _apply(_Call("sparse_multilabel_ce", ("logits",), ("positives",), dict(
        pad=pad, where=where, reduction=reduction)), logits, positives)


def globalpointer_ce(logits: torch.Tensor, spans_or_positives: Any, *, mask: Any = None, pad: int = -1,
                     reduction: str = "none") -> torch.Tensor:
    """The GlobalPointer loss of logits (B, heads, L, L), differentiable in `logits` (see
    `logitdiv.globalpointer_ce`): spans (B, heads, K, 2) or flat indices (B, heads, K) padded with
    `pad`, an optional (B, L) token mask.

    Reductions: "none" gives (B, heads); "batchmean" is bert4keras' NER
    ``global_pointer_crossentropy`` (sum / (B·heads)); "sum_heads_mean_batch" is GPLinker's
    ``globalpointer_crossentropy`` (sum / B); "mean" averages the (batch, head) rows with some
    span present; "sum"."""
    return _apply(_Call("globalpointer_ce", ("logits",), ("spans_or_positives",), dict(
        mask=mask, pad=pad, reduction=reduction)), logits, spans_or_positives)


def gamma_ce(logits: torch.Tensor, target: Any, *, gamma: float, threshold: Optional[float] = None,
             ignore_index: int = -100, where: Any = None, reduction: str = "none") -> torch.Tensor:
    """Su's γ-cross-entropy −log(γ + (1−γ) p_y)/(1−γ) per row, differentiable in `logits` (see
    `logitdiv.gamma_ce`).

    With a `threshold` b the value is the surrogate −max(b, r)·log p_y, r = p_y/(γ + (1−γ) p_y),
    and its "gradient" is max(b, r)·(p − onehot(y)): max(b, r) is held constant (a stop-gradient),
    so this is not the derivative of the value and ``gradcheck`` does not apply to it."""
    return _apply(_Call("gamma_ce", ("logits",), ("target",), dict(
        gamma=gamma, threshold=threshold, ignore_index=ignore_index, where=where, reduction=reduction)),
        logits, target)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, target: Any = None, *, temperature: float, alpha: float,
            t2: bool = True, label_smoothing: float = 0.0, ignore_index: int = -100, where: Any = None,
            reduction: str = "none") -> torch.Tensor:
    """Knowledge distillation (1−α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)) per row (see
    `logitdiv.kd_loss`); without `target` only the distillation term.

    Differentiable in the student and, when `teacher` requires grad, in the teacher too (from the
    same pass); a teacher computed under ``torch.no_grad()`` or detached costs nothing extra.
    `target` (indices or probabilities) is not differentiated. Equal to
    ``(1−α)·F.cross_entropy(s, y, reduction="none") + α·T²·F.kl_div(F.log_softmax(s/T, -1),
    F.log_softmax(t/T, -1), log_target=True, reduction="none").sum(-1)``."""
    return _apply(_Call("kd_loss", ("student", "teacher"), ("target",), dict(
        temperature=temperature, alpha=alpha, t2=t2, label_smoothing=label_smoothing, ignore_index=ignore_index,
        where=where, reduction=reduction), optional_grad="grad_teacher"), student, teacher, target)


def rdrop_loss(s1: torch.Tensor, s2: torch.Tensor, target: Any, *, alpha: float, kind: str = "softmax",
               label_smoothing: float = 0.0, ignore_index: int = -100, where: Any = None,
               reduction: str = "none") -> torch.Tensor:
    """R-Drop CE(s1, y) + CE(s2, y) + α/2·(KL(p1‖p2) + KL(p2‖p1)) per row, differentiable in both
    dropout passes s1, s2 (see `logitdiv.rdrop_loss`). ``kind="softmax"``: softmax CE (indices or
    probabilities) and the softmax symmetric KL; ``kind="sigmoid"``: `multilabel_ce` against labels
    in [0, 1] and the sigmoid symmetric KL Σ(σ(s1) − σ(s2))(s1 − s2). `target` is not differentiated."""
    return _apply(_Call("rdrop_loss", ("s1", "s2"), ("target",), dict(
        alpha=alpha, kind=kind, label_smoothing=label_smoothing, ignore_index=ignore_index, where=where,
        reduction=reduction)), s1, s2, target)


for _f in (softmax_ce, bce, multilabel_ce, sparse_multilabel_ce, globalpointer_ce, gamma_ce, kd_loss, rdrop_loss):
    _f.__doc__ = (_f.__doc__ or "").rstrip() + "\n" + _FUNCTIONAL_NOTE
del _f


# ----------------------------------------------------------------------------------------------
# losses: modules (reduction="mean" by default, as PyTorch's loss modules)

_REDUCTIONS = ("none", "sum", "mean", "batchmean")


class _LossModule(torch.nn.Module):
    """Holds the options of one loss; `extra_repr` shows them."""

    _reductions: Tuple[str, ...] = _REDUCTIONS

    def __init__(self, reduction: str, **options: Any) -> None:
        super().__init__()
        if reduction not in self._reductions:
            raise ValueError(f"reduction must be one of {', '.join(map(repr, self._reductions))}; got {reduction!r}")
        self.reduction = reduction
        self.options = options

    def extra_repr(self) -> str:
        return ", ".join([f"reduction={self.reduction!r}"] + [f"{k}={v!r}" for k, v in self.options.items()])


class CrossEntropyLoss(_LossModule):
    """Softmax cross-entropy, as ``torch.nn.CrossEntropyLoss``: `CrossEntropyLoss(weight=None, *,
    ignore_index=-100, reduction="mean", label_smoothing=0.0, z_loss=0.0, softcap=None)(input, target)`.

    `input` has the classes on the **last** axis (``(N, C)``, or ``(B, T, V)`` for a language
    model); torch's module puts them on axis 1 for more than 2 axes (``input.movedim(1, -1)``
    converts, at the cost of a copy). `target` holds class indices of the leading shape or
    probabilities of the input's shape (not differentiated). `weight` (one per class, a buffer)
    as torch's: "mean" over class indices divides by Σ w_y over the rows not ignored.
    Reductions: "mean" (default, as torch: over the rows not ignored), "sum", "none" (one value
    per row), "batchmean" (sum / all rows). The function `softmax_ce` defaults to "none".
    `temperature` τ divides the logits first (τ = 1 is torch's). `z_loss` (Liger-Kernel's
    ``lse_square_scale``) adds z · lse² per row; `softcap` caps the logits at c · tanh(x / c).
    `where` (forward argument) is a class mask or, with a last axis of length 1, a row mask."""

    def __init__(self, weight: Any = None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0, temperature: float = 1.0, z_loss: float = 0.0,
                 softcap: Optional[float] = None) -> None:
        options: Dict[str, Any] = dict(ignore_index=ignore_index, label_smoothing=label_smoothing,
                                       temperature=temperature)
        if z_loss != 0.0:
            options["z_loss"] = z_loss
        if softcap is not None:
            options["softcap"] = softcap
        super().__init__(reduction, **options)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight))

    def forward(self, input: torch.Tensor, target: Any, where: Any = None) -> torch.Tensor:
        options: Dict[str, Any] = dict(self.options)
        if self.weight is not None:
            options["weight"] = self.weight
        return softmax_ce(input, target, where=where, reduction=self.reduction, **options)


class BCEWithLogitsLoss(_LossModule):
    """Binary cross-entropy with logits, as ``torch.nn.BCEWithLogitsLoss``:
    `BCEWithLogitsLoss(weight=None, reduction="mean", pos_weight=None)(input, target)`.

    Reductions: "mean" (default) is PyTorch's, the mean over **every element**; "sum" the sum of
    every element; "batchmean" the per-row sums averaged over rows (C × "mean"); "none" gives the
    per-row sums over the last axis (shape = the leading axes), **not** torch's element-wise
    losses. (The function `bce` defaults to "none", and its "mean" is the mean of the row sums.)
    `weight` and `pos_weight` broadcast to the input (pos_weight typically one per class, (C,));
    neither they nor `target` are differentiated."""

    def __init__(self, weight: Any = None, *, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        # buffers, so that .to(...) and state_dict carry them as torch's module does
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight))
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight))

    def forward(self, input: torch.Tensor, target: Any, where: Any = None) -> torch.Tensor:
        weights: Any = self.weight
        reduction = self.reduction
        if reduction == "mean":
            # PyTorch's mean over every element = the row sums' "batchmean" with every weight
            # divided by C: the kernel applies the 1/C, so backward need not rescale the gradient.
            c = input.shape[-1]
            if weights is None:
                weights = torch.full((c,), 1.0 / c, dtype=torch.float64, device=input.device)
            else:
                weights = weights.double() / c
            reduction = "batchmean"
        return bce(input, target, pos_weight=self.pos_weight, weights=weights, where=where, reduction=reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MultilabelCrossEntropy(_LossModule):
    """Su's multilabel softmax cross-entropy (bert4keras' ``multilabel_categorical_crossentropy``):
    `MultilabelCrossEntropy(reduction="mean")(input, target)`, target of the input's shape with
    labels in [0, 1] (not differentiated). "mean" (default) averages the per-row losses, as
    bert4keras' ``K.mean``; the function `multilabel_ce` defaults to "none"."""

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, input: torch.Tensor, target: Any, where: Any = None) -> torch.Tensor:
        return multilabel_ce(input, target, where=where, reduction=self.reduction)


class SparseMultilabelCrossEntropy(_LossModule):
    """The multilabel softmax cross-entropy with positives as class indices (..., K), padded with
    `pad`: `SparseMultilabelCrossEntropy(pad=-1, reduction="mean")(input, positives)`. "mean"
    (default) averages the per-row losses; the function `sparse_multilabel_ce` defaults to "none"."""

    def __init__(self, *, pad: int = -1, reduction: str = "mean") -> None:
        super().__init__(reduction, pad=pad)

    def forward(self, input: torch.Tensor, positives: Any, where: Any = None) -> torch.Tensor:
        return sparse_multilabel_ce(input, positives, where=where, reduction=self.reduction, **self.options)


class GlobalPointerLoss(_LossModule):
    """The GlobalPointer loss: `GlobalPointerLoss(pad=-1, reduction="mean")(logits, spans, mask=None)`,
    logits (B, heads, L, L), spans (B, heads, K, 2) or flat indices (B, heads, K), token mask (B, L).

    Reductions: "mean" (default) averages the (batch, head) rows that have some span present;
    ``"batchmean"`` = sum / (B·heads) is **bert4keras' NER** ``global_pointer_crossentropy``
    (equal to "mean" unless a row has no span left, e.g. an all-padding sequence);
    ``"sum_heads_mean_batch"`` = sum / B is **GPLinker's** ``globalpointer_crossentropy`` (GPLinker
    pads spans with (0, 0): use ``pad=0`` and set the (0, 0) logits to −inf); "sum"; "none" gives
    (B, heads). The function `globalpointer_ce` defaults to "none"."""

    _reductions = _REDUCTIONS + ("sum_heads_mean_batch",)

    def __init__(self, *, pad: int = -1, reduction: str = "mean") -> None:
        super().__init__(reduction, pad=pad)

    def forward(self, logits: torch.Tensor, spans_or_positives: Any, mask: Any = None) -> torch.Tensor:
        return globalpointer_ce(logits, spans_or_positives, mask=mask, reduction=self.reduction, **self.options)


class GammaCrossEntropy(_LossModule):
    """Su's γ-cross-entropy: `GammaCrossEntropy(gamma, threshold=None, ignore_index=-100,
    reduction="mean")(input, target)` with class indices; see `gamma_ce` (with a threshold its
    gradient is a surrogate, not the value's derivative). "mean" (default) averages over the rows
    not ignored; the function `gamma_ce` defaults to "none"."""

    def __init__(self, gamma: float, *, threshold: Optional[float] = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(reduction, gamma=gamma, threshold=threshold, ignore_index=ignore_index)

    def forward(self, input: torch.Tensor, target: Any, where: Any = None) -> torch.Tensor:
        return gamma_ce(input, target, where=where, reduction=self.reduction, **self.options)


class DistillationLoss(_LossModule):
    """Knowledge distillation: `DistillationLoss(temperature=T, alpha=α, t2=True,
    reduction="mean")(student, teacher, target=None)` = (1−α)·CE(s, y) + α·T²·KL(q_T ‖ p_T) per row
    (without a target, α·T²·KL only); see `kd_loss`. The teacher gets a gradient only when it
    requires grad. "mean" (default) averages over the rows not ignored — with no ignored rows the
    same as ``F.kl_div(..., reduction="batchmean")`` for the KL term; the function `kd_loss`
    defaults to "none"."""

    def __init__(self, *, temperature: float, alpha: float, t2: bool = True, label_smoothing: float = 0.0,
                 ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction, temperature=temperature, alpha=alpha, t2=t2, label_smoothing=label_smoothing,
                         ignore_index=ignore_index)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: Any = None, where: Any = None) -> torch.Tensor:
        return kd_loss(student, teacher, target, where=where, reduction=self.reduction, **self.options)


class RDropLoss(_LossModule):
    """R-Drop: `RDropLoss(alpha=α, kind="softmax", reduction="mean")(s1, s2, target)` =
    CE(s1, y) + CE(s2, y) + α/2·(KL(p1‖p2) + KL(p2‖p1)) per row, s1 and s2 two dropout passes
    of the same batch; ``kind="sigmoid"`` for multilabel / GlobalPointer heads (multilabel CE
    and the sigmoid symmetric KL). See `rdrop_loss`. "mean" (default) averages over the rows not
    ignored; the function `rdrop_loss` defaults to "none"."""

    def __init__(self, *, alpha: float, kind: str = "softmax", label_smoothing: float = 0.0, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        if kind not in ("softmax", "sigmoid"):
            raise ValueError(f"kind must be 'softmax' or 'sigmoid'; got {kind!r}")
        super().__init__(reduction, alpha=alpha, kind=kind, label_smoothing=label_smoothing, ignore_index=ignore_index)

    def forward(self, s1: torch.Tensor, s2: torch.Tensor, target: Any, where: Any = None) -> torch.Tensor:
        return rdrop_loss(s1, s2, target, where=where, reduction=self.reduction, **self.options)
