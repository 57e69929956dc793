"""Generates docs/API.md, the reference of logitdiv's public Python API, from the docstrings and
signatures themselves (so it cannot disagree with the code). `python docs/gen_api.py` rewrites it;
`python docs/gen_api.py --check` exits 1 if the checked-in file is stale (the test suite runs that)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import sys

OUT = pathlib.Path(__file__).with_name("API.md")

SECTIONS = [
    ("Divergences between two logit arrays", "logitdiv", ["kl", "sym_kl", "js", "tv", "sigmoid_kl", "sigmoid_sym_kl", "gp_kl"]),
    ("Losses against labels", "logitdiv", ["softmax_ce", "bce", "multilabel_ce", "sparse_multilabel_ce",
                                           "globalpointer_ce", "gamma_ce", "kd_loss", "rdrop_loss"]),
    ("Consistency scoring", "logitdiv", ["score", "ScoreResult", "Summary", "Scorer"]),
    ("Token-aware statistics", "logitdiv.scoring.tokens", ["TokenSummary"]),
    ("Quantile sketch", "logitdiv.scoring.sketch", ["QuantileSketch"]),
    ("llama.cpp's KL-divergence base file: reading", "logitdiv.scoring.llama", ["KldBaseSource"]),
    ("llama.cpp's KL-divergence base file: writing", "logitdiv.scoring.writers", ["write_kld_base"]),
    ("Threads", "logitdiv", ["set_num_threads", "get_num_threads"]),
    ("Scoring over Dask", "logitdiv.scoring.dask", ["score"]),
    ("PyTorch", "logitdiv.torch", sorted(importlib.import_module("logitdiv.torch").__all__)),
    ("GPU (CuPy)", "logitdiv.cuda", importlib.import_module("logitdiv.cuda").__all__),
]


def render() -> str:
    import logitdiv

    out = [
        "# logitdiv API reference",
        "",
        f"Version {logitdiv.__version__}. Generated from the docstrings by `docs/gen_api.py`; do not edit.",
        "The mathematics (formulas, gradients, accurate forms, −inf conventions) is in MATH.md.",
        "",
    ]
    for title, module_name, names in SECTIONS:
        module = importlib.import_module(module_name)
        out += [f"## {title}", ""]
        for name in names:
            obj = getattr(module, name)
            try:
                sig = str(inspect.signature(obj))
            except (TypeError, ValueError):
                sig = "(...)"
            kind = "class" if inspect.isclass(obj) else "function"
            alias = f" (alias of `{obj.__name__}`)" if getattr(obj, "__name__", name) != name else ""
            out += [f"### `{module_name}.{name}`{alias}", "", f"```python\n{kind} {name}{sig}\n```", ""]
            doc = inspect.getdoc(obj) or "(no docstring)"
            out += ["```text", doc, "```", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/API.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/API.md is stale: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
