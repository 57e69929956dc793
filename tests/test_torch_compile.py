"""logitdiv.torch as PyTorch custom operators: every function and module inside a training step
compiled with ``torch.compile(fullgraph=True)`` (no graph break, the same losses and parameters as
eager after two optimizer steps), ``torch.export`` of a module using them, and
``torch.library.opcheck`` of every operator (schema, autograd registration, fake tensors, AOT
dispatch with dynamic shapes).

Each step compiles with the "aot_eager" backend (Dynamo + AOT autograd: the whole graph capture,
forward and backward) and with Inductor, torch.compile's default (about 2 minutes on 2 cores;
LOGITDIV_TEST_INDUCTOR=0 leaves Inductor out)."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Tuple

import pytest
import torch

import logitdiv.torch as ldt

B, C, H, L, D = 4, 6, 2, 3, 5
INDUCTOR = os.environ.get("LOGITDIV_TEST_INDUCTOR", "1") != "0"
BACKENDS = ["aot_eager"] + (["inductor"] if INDUCTOR else [])


def labels(seed: int = 0) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "y": torch.tensor([0, 5, 2, -100]),
        "y_bin": (torch.rand(B, C, generator=g) > 0.5).double(),
        "pos": torch.tensor([[0, 2], [1, -1], [5, 3], [-1, -1]]),
        "spans": torch.tensor([[[[0, 1], [-1, -1]], [[2, 2], [0, 0]]],
                               [[[1, 2], [-1, -1]], [[-1, -1], [-1, -1]]]] * 2)[:B],
        "mask": torch.tensor([[1, 1, 1], [0, 1, 1], [1, 1, 1], [0, 1, 1]]),  # no span masked out
        "w": torch.linspace(0.5, 1.5, C),
        "where": torch.tensor([True, True, False, True, True, True]),
    }


# name -> (loss of the two heads' logits a, b (b may be unused) and the labels, heads' output shape)
LOSSES: Dict[str, Tuple[Callable[..., torch.Tensor], Tuple[int, ...]]] = {
    "kl": (lambda a, b, y: ldt.kl(a, b, temperature=2.0, where=y["where"], reduction="batchmean"), (C,)),
    "sym_kl": (lambda a, b, y: ldt.sym_kl(a, b, reduction="sum"), (C,)),
    "js": (lambda a, b, y: ldt.js(a, b, beta=0.3, reduction="mean"), (C,)),
    "tv": (lambda a, b, y: ldt.tv(a, b, softcap=2.0, reduction="batchmean"), (C,)),
    "kl_softcap": (lambda a, b, y: ldt.kl(a, b.detach(), softcap=1.5, reduction="sum"), (C,)),
    "sigmoid_kl": (lambda a, b, y: ldt.sigmoid_kl(a, b, weights=y["w"], reduction="batchmean"), (C,)),
    "gp_kl": (lambda a, b, y: (ldt.gp_kl(a, b) * torch.arange(1.0, B + 1)).sum(), (C,)),  # per row, weighted
    "softmax_ce": (lambda a, b, y: ldt.softmax_ce(a, y["y"], label_smoothing=0.1, reduction="mean"), (C,)),
    # the LLM options; the z-term and the accuracy come back beside the loss
    "softmax_ce_llm": (lambda a, b, y: sum(ldt.softmax_ce(
        a, y["y"], weight=y["w"], z_loss=1e-2, softcap=3.0, label_smoothing=0.1, return_z_loss=True,
        return_accuracy=True, reduction="mean")[:1]), (C,)),
    "bce": (lambda a, b, y: ldt.bce(a, y["y_bin"], pos_weight=y["w"], reduction="mean"), (C,)),
    "multilabel_ce": (lambda a, b, y: ldt.multilabel_ce(a, y["y_bin"], reduction="sum"), (C,)),
    "sparse_multilabel_ce": (lambda a, b, y: ldt.sparse_multilabel_ce(a, y["pos"], reduction="mean"), (C,)),
    "globalpointer_ce": (lambda a, b, y: ldt.globalpointer_ce(a, y["spans"], mask=y["mask"], reduction="batchmean"),
                         (H, L, L)),
    "gamma_ce": (lambda a, b, y: ldt.gamma_ce(a, y["y"], gamma=0.3, reduction="mean"), (C,)),
    "kd_loss": (lambda a, b, y: ldt.kd_loss(a, b.detach(), y["y"], temperature=2.0, alpha=0.5, reduction="mean"),
                (C,)),
    "kd_loss_teacher_grad": (lambda a, b, y: ldt.kd_loss(a, b, temperature=2.0, alpha=1.0, reduction="sum"), (C,)),
    "rdrop_loss": (lambda a, b, y: ldt.rdrop_loss(a, b, y["y"], alpha=1.0, reduction="mean"), (C,)),
    # the modules
    "KLDivergence": (lambda a, b, y: ldt.KLDivergence(temperature=2.0)(a, b), (C,)),
    "SymmetricKL": (lambda a, b, y: ldt.SymmetricKL()(a, b), (C,)),
    "JSDivergence": (lambda a, b, y: ldt.JSDivergence(beta=0.25)(a, b), (C,)),
    "SigmoidKL": (lambda a, b, y: ldt.SigmoidKL(weights=y["w"])(a, b), (C,)),
    "GlobalPointerKL": (lambda a, b, y: ldt.GlobalPointerKL()(a, b), (C,)),
    "CrossEntropyLoss": (lambda a, b, y: ldt.CrossEntropyLoss(label_smoothing=0.1)(a, y["y"]), (C,)),
    "CrossEntropyLoss_llm": (lambda a, b, y: ldt.CrossEntropyLoss(y["w"], z_loss=1e-3, softcap=2.0)(a, y["y"]), (C,)),
    "TVDistance": (lambda a, b, y: ldt.TVDistance()(a, b), (C,)),
    "BCEWithLogitsLoss": (lambda a, b, y: ldt.BCEWithLogitsLoss(weight=y["w"], pos_weight=y["w"])(a, y["y_bin"]),
                          (C,)),
    "MultilabelCrossEntropy": (lambda a, b, y: ldt.MultilabelCrossEntropy()(a, y["y_bin"]), (C,)),
    "SparseMultilabelCrossEntropy": (lambda a, b, y: ldt.SparseMultilabelCrossEntropy()(a, y["pos"]), (C,)),
    "GlobalPointerLoss": (lambda a, b, y: ldt.GlobalPointerLoss()(a, y["spans"], y["mask"]), (H, L, L)),
    "GammaCrossEntropy": (lambda a, b, y: ldt.GammaCrossEntropy(0.5, threshold=0.2)(a, y["y"]), (C,)),
    "DistillationLoss": (lambda a, b, y: ldt.DistillationLoss(temperature=2.0, alpha=0.5)(a, b.detach(), y["y"]),
                         (C,)),
    "RDropLoss": (lambda a, b, y: ldt.RDropLoss(alpha=2.0, kind="sigmoid")(a, b, y["y_bin"]), (C,)),
}


class TwoHeads(torch.nn.Module):
    """x -> two logits tensors of shape (B, *out) (two "dropout passes", or student and teacher)."""

    def __init__(self, out: Tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        n = 1
        for d in out:
            n *= d
        self.out = out
        self.a, self.b = torch.nn.Linear(D, n), torch.nn.Linear(D, n)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.a(x).reshape(-1, *self.out), self.b(x).reshape(-1, *self.out)


# Dynamo traces `loss.backward()` into the graph with this option (PyTorch ≥ 2.10 or so); without it
# the step compiles the forward and the loss (their backward is compiled by AOT autograd all the same).
WHOLE_STEP = hasattr(torch._dynamo.config, "trace_autograd_ops")
LR = 0.5


def make_step(name: str, model: TwoHeads) -> Callable[..., torch.Tensor]:
    """One SGD training step. The update is written out: torch.optim's `step()` inserts graph
    breaks of its own (`torch._dynamo.graph_break()` in `_use_grad`, on purpose), whatever the loss."""
    loss_fn = LOSSES[name][0]
    params = list(model.parameters())

    def forward(x: torch.Tensor, y: Dict[str, torch.Tensor]) -> torch.Tensor:
        a, b = model(x)
        return loss_fn(a, b, y)

    def update() -> None:
        with torch.no_grad():
            for p in params:
                if p.grad is not None:  # the teacher head gets none where it is detached or unused
                    p.sub_(LR * p.grad)
                    p.grad = None

    def step(x: torch.Tensor, y: Dict[str, torch.Tensor]) -> torch.Tensor:
        loss = forward(x, y)
        loss.backward()
        update()
        return loss.detach().clone()

    step.forward = forward  # type: ignore[attr-defined]
    step.update = update  # type: ignore[attr-defined]
    return step


def compiled(step: Callable[..., torch.Tensor], backend: str) -> Callable[..., torch.Tensor]:
    if WHOLE_STEP:
        inner = torch.compile(step, backend=backend, fullgraph=True)

        def whole(x: torch.Tensor, y: Dict[str, torch.Tensor]) -> torch.Tensor:
            with torch._dynamo.config.patch(trace_autograd_ops=True):
                return inner(x, y)
        return whole
    forward = torch.compile(step.forward, backend=backend, fullgraph=True)  # type: ignore[attr-defined]

    def partial(x: torch.Tensor, y: Dict[str, torch.Tensor]) -> torch.Tensor:
        loss = forward(x, y)
        loss.backward()
        step.update()  # type: ignore[attr-defined]
        return loss.detach()
    return partial


def run_steps(name: str, compile_with: Any) -> Tuple[list, Dict[str, torch.Tensor]]:
    model = TwoHeads(LOSSES[name][1])
    step = make_step(name, model)
    if compile_with is not None:
        step = compiled(step, compile_with)
    x, y = torch.randn(B, D, generator=torch.Generator().manual_seed(1)), labels()
    losses = [step(x, y) for _ in range(2)]
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LOSSES)
def test_compiled_training_step_has_no_graph_break_and_matches_eager(name, backend):
    """Forward, loss, backward and optimizer step in one compiled graph (fullgraph=True raises on
    any break), twice; the losses and the updated parameters equal eager's."""
    want_losses, want_params = run_steps(name, None)
    got_losses, got_params = run_steps(name, backend)
    for got, want in zip(got_losses, want_losses):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for key in want_params:
        torch.testing.assert_close(got_params[key], want_params[key], rtol=1e-5, atol=1e-6)
    assert not torch.equal(want_params["a.weight"], TwoHeads(LOSSES[name][1]).a.weight.detach())  # it learned


@pytest.mark.parametrize("name", ["kd_loss", "globalpointer_ce", "RDropLoss", "BCEWithLogitsLoss"])
def test_explain_counts_no_graph_break(name):
    step = make_step(name, TwoHeads(LOSSES[name][1]))
    fn = step if WHOLE_STEP else step.forward  # type: ignore[attr-defined]
    with torch._dynamo.config.patch(**({"trace_autograd_ops": True} if WHOLE_STEP else {})):
        explanation = torch._dynamo.explain(fn)(torch.randn(B, D), labels())
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_the_loss_is_one_operator_in_the_graph():
    seen = []

    def backend(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm

    s = torch.randn(B, C, requires_grad=True)
    torch.compile(lambda s, t: ldt.sym_kl(s, t, reduction="batchmean"), backend=backend, fullgraph=True)(
        s, torch.randn(B, C))
    assert seen == ["logitdiv.sym_kl", "<built-in function getitem>"]  # the op and its value


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.heads = TwoHeads((C,))
        self.ce = ldt.CrossEntropyLoss(label_smoothing=0.1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = self.heads(x)
        return self.ce(a, y) + ldt.sym_kl(a, b, reduction="batchmean")


def test_export_keeps_the_operators_and_runs():
    net = Net()
    x, y = torch.randn(B, D), torch.tensor([0, 5, 2, 1])
    exported = torch.export.export(net, (x, y))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert {"logitdiv.softmax_ce.default", "logitdiv.sym_kl.default"} <= targets
    x2 = torch.randn(B, D)
    torch.testing.assert_close(exported.module()(x2, y), net(x2, y))


# ----------------------------------------------------------------------------------------------
# opcheck: every operator, with and without gradients


def op_samples() -> Dict[str, list]:
    g = torch.Generator().manual_seed(3)
    y = labels()
    f64 = dict(dtype=torch.float64)

    def x(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, **f64).requires_grad_()

    s, t = x(B, C), x(B, C)
    gp = x(B, H, L, L)
    T, W, R = 2.0, y["where"], "batchmean"
    samples = {
        "kl": (s, t, T, W, R, True),
        "sym_kl": (s, t, 1.0, None, "none", True),
        "js": (s, t, 0.3, T, None, "sum", True),
        "tv": (s, t, T, W, "mean", True),
        "sigmoid_kl": (s, t, y["w"], T, None, "mean", True),
        "sigmoid_sym_kl": (s, t, None, 1.0, W, "none", True),
        "softmax_ce": (s, y["y"], 0.1, -100, 1.0, None, "mean", True),
        "bce": (s, y["y_bin"], y["w"], None, None, "none", True),
        "multilabel_ce": (s, y["y_bin"], None, "sum", True),
        "sparse_multilabel_ce": (s, y["pos"], -1, None, "none", True),
        "globalpointer_ce": (gp, y["spans"], y["mask"], -1, "none", True),
        "gamma_ce": (s, y["y"], 0.3, None, -100, None, "mean", True),
        "kd_loss": (s, t, y["y"], T, 0.5, True, 0.0, -100, None, "none", True, True),
        "rdrop_loss": (s, t, y["y"], 1.0, "softmax", 0.1, -100, None, "mean", True),
    }
    out = {}
    for name, args in samples.items():
        no_grad = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args[:-1]) + (False,)
        if name == "kd_loss":
            no_grad = no_grad[:-2] + (False, False)
        out[name] = [args, no_grad]
    out["kd_loss"].append(samples["kd_loss"][:1] + (t.detach(),) + samples["kd_loss"][2:-1] + (False,))
    return out


SAMPLES = op_samples()


def test_every_function_has_an_operator():
    assert set(SAMPLES) == set(ldt._SCHEMAS) == {
        "kl", "sym_kl", "js", "tv", "sigmoid_kl", "sigmoid_sym_kl", "softmax_ce", "bce", "multilabel_ce",
        "sparse_multilabel_ce", "globalpointer_ce", "gamma_ce", "kd_loss", "rdrop_loss"}


@pytest.mark.parametrize("name", SAMPLES)
def test_opcheck(name):
    op = getattr(torch.ops.logitdiv, name).default
    for args in SAMPLES[name]:
        torch.library.opcheck(op, args, test_utils=(
            "test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_meta_tensors_give_shapes_and_dtypes():
    s = torch.empty(3, 5, C, device="meta", dtype=torch.bfloat16)
    t = torch.empty(3, 5, C, device="meta", dtype=torch.float32)
    v = ldt.kl(s, t)
    assert v.device.type == "meta" and v.shape == (3, 5) and v.dtype == torch.float32
    assert ldt.kl(s, s).dtype == torch.float32 and ldt.kl(t.double(), t.double(), reduction="sum").shape == ()
    gp = torch.empty(2, H, L, L, device="meta", dtype=torch.float64)
    assert ldt.globalpointer_ce(gp, torch.zeros(2, H, 1, 2, dtype=torch.long)).shape == (2, H)


class _Watch(torch.utils._python_dispatch.TorchDispatchMode):
    """A dispatch mode that only records the operators it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_eager_calls_skip_the_dispatcher_and_match_the_operator(name):
    """An eager call runs the operator's own compute and backward as an autograd.Function
    (`_direct`: no dispatcher); under a dispatch mode — as under a tracer — the call is the
    operator, which the mode sees. Both give the same loss and gradients, bit for bit."""
    def run(watch: Any) -> Tuple[torch.Tensor, list]:
        model = TwoHeads(LOSSES[name][1])
        x, y = torch.randn(B, D, generator=torch.Generator().manual_seed(1)), labels()
        a, b = model(x)
        a.retain_grad()
        with watch:
            loss = LOSSES[name][0](a, b, y)
        loss.backward()
        return loss.detach(), [a.grad] + [p.grad for p in model.parameters()]

    import contextlib

    eager_loss, eager_grads = run(contextlib.nullcontext())
    watch = _Watch()
    op_loss, op_grads = run(watch)
    assert any(s.startswith("logitdiv.") for s in watch.seen), watch.seen
    assert torch.equal(eager_loss, op_loss)
    for g, h in zip(eager_grads, op_grads):
        assert (g is None and h is None) or torch.equal(g, h)
    x = torch.randn(2, C, requires_grad=True)
    assert type(ldt.kl(x, x.detach()).grad_fn).__name__.startswith("kl_direct")
