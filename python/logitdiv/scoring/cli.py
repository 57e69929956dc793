"""The ``logitdiv`` command line.

``logitdiv score BASE CANDIDATE [options]`` scores two files of logits row by row and prints a
summary; ``logitdiv demo`` runs the same on a built-in example. Errors print one line,
``logitdiv: error: …``, and exit with status 1 (2 for a bad command line); never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any, NoReturn, Optional, Sequence

__all__ = ["main"]

_DEFAULT_METRICS = "kl,sym_kl,js,top1"


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and raise instead of exiting)."""

    def error(self, message: str) -> NoReturn:
        _say_error(f"{message} (see {self.prog} --help)", prog=self.prog)
        raise _Exit(2)

    def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


def _say_error(message: str, prog: str = "logitdiv") -> None:
    text = " ".join(str(message).split())  # one line, whatever the exception said
    sys.stderr.write(f"{prog}: error: {text}\n")
    sys.stderr.flush()


def _add_output_options(p: argparse.ArgumentParser, *, default_threshold: Optional[float]) -> None:
    p.add_argument("--metric", "-m", action="append", metavar="LIST",
                   help=f"metrics, comma-separated or repeated: kl, rkl, sym_kl, js, sigmoid_kl, sigmoid_sym_kl, "
                        f"top1, topK (e.g. top5); default {_DEFAULT_METRICS}")
    p.add_argument("--temperature", "-T", type=float, default=1.0, metavar="T", help="divide both logits by T first (default 1)")
    p.add_argument("--chunk-rows", type=int, metavar="N", help="rows per chunk (default: about 16 MiB of each input)")
    p.add_argument("--out", "-o", metavar="FILE", help="write per-row scores to FILE: .npy (structured array), .csv or .parquet")
    p.add_argument("--exact-rows", type=int, default=None, metavar="N",
                   help="finite values per metric kept for exact quantiles (default 4194304); beyond, quantiles come "
                        "from a sketch whose rank-error bound the report states. Per-row scores are never all held in "
                        "memory (--out streams them to disk) unless --plot needs them")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (schema logitdiv.score/1) instead of text")
    p.add_argument("--plot", metavar="PNG", help="write a histogram of per-row divergences (log scale) to PNG (needs matplotlib)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="list the K worst rows (default 10)")
    p.add_argument("--threshold", type=float, default=default_threshold, metavar="X",
                   help="count rows whose divergence exceeds X" + (f" (default {default_threshold:g})" if default_threshold else ""))
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show a progress bar")
    prog.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")


def _parser() -> _Parser:
    from .. import __version__

    top = _Parser(prog="logitdiv", description="Divergences straight from logits: score two models' logits against each other.")
    top.add_argument("--version", action="version", version=f"logitdiv {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser(
        "score",
        help="score two files of logits row by row and summarise",
        description="Score every row of CANDIDATE's logits against BASE's (same rows, same classes) and print a "
                    "summary: mean ± SE, median, p90, p99, p99.9, max, top-1 agreement, non-finite rows, worst rows. "
                    "Reads .npy (memory-mapped), .npz, .safetensors, Parquet and Arrow (a fixed-size-list column) "
                    "in chunks, so files larger than memory are fine.",
    )
    s.add_argument("base", metavar="BASE", help="the reference logits (e.g. the full-precision model's)")
    s.add_argument("candidate", metavar="CANDIDATE", help="the logits to compare (e.g. the quantised model's)")
    s.add_argument("--key", "-k", metavar="NAME", help="array (.npz), tensor (.safetensors) or column (Parquet/Arrow) to read from both files")
    s.add_argument("--base-key", metavar="NAME", help="--key for BASE only")
    s.add_argument("--candidate-key", metavar="NAME", help="--key for CANDIDATE only")
    s.add_argument("--tokens", metavar="FILE.npy",
                   help="the evaluated token of every row (1-D integer .npy): adds each model's PPL, their ratio and "
                        "correlation, Δp statistics and top-1 = token (llama.cpp's --kl-divergence statistics)")
    _add_output_options(s, default_threshold=None)
    s.set_defaults(func=_cmd_score)

    k = sub.add_parser(
        "base",
        help="write a llama.cpp KL-divergence base file (--kl-divergence-base) from logits and tokens",
        description="Write LOGITS (a row per token, or per scored position n_ctx/2 … n_ctx-2 of each chunk) and "
                    "TOKENS (1-D ids, whole chunks of --n-ctx) as llama.cpp's KL-divergence base file: per scored "
                    "position, 16-bit log-probabilities over the 16 nats below the row's top one. `logitdiv score` "
                    "reads such a file as BASE (with its tokens).",
    )
    k.add_argument("logits", metavar="LOGITS", help="the base model's logits (.npy, .safetensors, … as for score)")
    k.add_argument("tokens", metavar="TOKENS", help="the evaluated token ids (1-D integer .npy)")
    k.add_argument("--n-ctx", type=int, required=True, metavar="N", help="the context length of each chunk")
    k.add_argument("--output", "-o", required=True, metavar="FILE", help="the base file to write (e.g. base.kld)")
    k.set_defaults(func=_cmd_base)

    d = sub.add_parser(
        "demo",
        help="score a built-in example: a synthetic model and its quantised copy",
        description="Make two synthetic models' logits (a random linear model and its 6-bit-weight, 8-bit-activation "
                    "quantised copy, float16 logits; a few rows carry activation outliers), write them as .npy "
                    "files and score them exactly as `logitdiv score` would.",
    )
    d.add_argument("--rows", type=int, default=6000, help="rows (default 6000)")
    d.add_argument("--classes", type=int, default=256, help="classes (default 256)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.add_argument("--dir", metavar="DIR", help="write base.npy and candidate.npy into DIR and keep them (default: a temporary directory)")
    _add_output_options(d, default_threshold=0.1)
    d.set_defaults(func=_cmd_demo)
    return top


def _progress_flag(args: argparse.Namespace) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _check_outputs(args: argparse.Namespace) -> Any:
    """Validates the options before any work (so a long run never fails at the end); returns the
    checked `ScoreOptions`, which the run takes as they are."""
    from .batch import check_run
    from .scorer import ScoreOptions
    from .sketch import DEFAULT_EXACT_ROWS

    options = ScoreOptions.checked(
        ",".join(args.metric) if args.metric else _DEFAULT_METRICS,
        temperature=args.temperature,
        threshold=args.threshold,
        top_k_worst=args.top,
        keep_scores=bool(args.plot),
        exact_rows=DEFAULT_EXACT_ROWS if args.exact_rows is None else args.exact_rows,
        names={"temperature": "--temperature", "threshold": "--threshold", "top_k_worst": "--top",
               "exact_rows": "--exact-rows"},
    )
    check_run(args.chunk_rows, args.out, names={"chunk_rows": "--chunk-rows"})
    if args.out:
        _check_writable(args.out, "--out")
    if args.plot:
        from .plot import need_matplotlib

        if not args.plot.lower().endswith(".png"):
            raise ValueError(f"--plot writes a PNG; give a path ending in .png, not {args.plot!r}")
        if not any(m.kind == "divergence" for m in options.metrics):
            raise ValueError("--plot draws divergences; add one with --metric (kl, sym_kl, js, ...)")
        need_matplotlib()
        _check_writable(args.plot, "--plot")
    return options


def _check_writable(path: str, option: str) -> None:
    """An output is written beside its path and renamed onto it: its directory must exist and be
    writable, and the path, if it exists, must be a regular file (not a directory or a FIFO)."""
    import stat

    from .sources import file_kind

    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"{option}: directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise PermissionError(f"{option}: cannot write into {d}")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{option}: {path} is {file_kind(st.st_mode)}, not a regular file to write")


def _check_outputs_are_not_inputs(args: argparse.Namespace, inputs: Sequence[Any]) -> None:
    """Refuses an output that is one of the inputs — the same file by identity (device and inode:
    hard links, symlinks, other spellings of the path), not by name — or the other output."""
    def identity(path: Any) -> Any:
        try:
            st = os.stat(path)
        except (OSError, TypeError, ValueError):
            return None
        return (st.st_dev, st.st_ino)

    outputs = [(opt, p) for opt, p in (("--out", args.out), ("--plot", args.plot)) if p]
    ins = [(label, p, identity(p)) for label, p in zip(("BASE", "CANDIDATE"), inputs) if isinstance(p, (str, os.PathLike))]
    for opt, p in outputs:
        mine = identity(p)
        if mine is None:
            continue
        for label, q, theirs in ins:
            if mine == theirs:
                raise ValueError(f"{opt} {p} is the same file as {label} ({q}); write the output to another file")
    if len(outputs) == 2:
        a, b = outputs[0][1], outputs[1][1]
        if os.path.abspath(a) == os.path.abspath(b) or (identity(a) is not None and identity(a) == identity(b)):
            raise ValueError(f"--out and --plot name the same file ({a})")


def _run(args: argparse.Namespace, options: Any, base: Any, candidate: Any, title: str, inputs: dict) -> int:
    """Scores the sources BASE and CANDIDATE with the options `_check_outputs` checked (once, before
    any work)."""
    from .. import __version__
    from .batch import score_sources

    _check_outputs_are_not_inputs(args, [inputs.get("base"), inputs.get("candidate")])
    scores, summary = score_sources(base, candidate, options, chunk_rows=args.chunk_rows,
                                    progress=_progress_flag(args), out=args.out, tokens=getattr(args, "tokens", None))
    if args.plot:
        from .writers import replacing
        from .plot import histogram

        with replacing(args.plot) as tmp:
            histogram(scores, summary, tmp, title=f"{title}: {summary.rows:,} rows × {summary.classes:,} classes")
    if args.json:
        doc = {"schema": None, "logitdiv_version": __version__, "inputs": inputs}
        doc.update(summary.to_dict())
        doc["outputs"] = {"scores": args.out, "plot": args.plot}
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    else:
        sys.stdout.write(summary.format(title=title) + "\n")
        for what, path in (("per-row scores", args.out), ("histogram", args.plot)):
            if path:
                sys.stdout.write(f"wrote {what} to {path}\n")
    sys.stdout.flush()
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    options = _check_outputs(args)
    key_a = args.base_key if args.base_key is not None else args.key
    key_b = args.candidate_key if args.candidate_key is not None else args.key
    checks = [("BASE", args.base, "BASE"), ("CANDIDATE", args.candidate, "CANDIDATE")]
    if args.tokens is not None:
        checks.append(("--tokens", args.tokens, "--tokens"))
    for flag, path, name in checks:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{flag}: no such file: {path}")
    _check_outputs_are_not_inputs(args, [args.base, args.candidate])  # before any work
    from .readers import open_source

    sa = open_source(args.base, key_a, "BASE")
    try:
        sb = open_source(args.candidate, key_b, "CANDIDATE")
        try:
            inputs = {"base": args.base, "candidate": args.candidate, "base_key": key_a, "candidate_key": key_b}
            return _run(args, options, sa, sb, "logitdiv score", inputs)
        finally:
            sb.close()
    finally:
        sa.close()


def _cmd_base(args: argparse.Namespace) -> int:
    import numpy as np

    from .writers import write_kld_base

    for flag, path in (("LOGITS", args.logits), ("TOKENS", args.tokens)):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{flag}: no such file: {path}")
    if args.n_ctx < 2:
        raise ValueError(f"--n-ctx must be ≥ 2; got {args.n_ctx}")
    _check_writable(args.output, "--output")
    try:
        tokens = np.load(args.tokens, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"TOKENS ({args.tokens}): cannot read it as a .npy file: {e}") from None
    try:
        n_chunk, rows = write_kld_base(args.output, args.logits, tokens, args.n_ctx)
    except ValueError as e:
        raise ValueError(f"{args.logits}, {args.tokens}: {e}") from None
    sys.stdout.write(f"wrote {args.output}: {n_chunk} chunks of n_ctx={args.n_ctx}, {rows} scored positions\n")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import write_demo
    from .readers import open_source

    options = _check_outputs(args)
    if args.rows < 1 or args.classes < 2:
        raise ValueError(f"--rows must be ≥ 1 and --classes ≥ 2; got {args.rows} and {args.classes}")

    def go(directory: str) -> int:
        base, cand, info = write_demo(directory, rows=args.rows, classes=args.classes, seed=args.seed)
        if not args.json:
            sys.stdout.write(
                "Two synthetic models scored on the same rows: a random linear classifier (float32 logits) and its\n"
                "quantised copy (6-bit weights, 8-bit activations over a static range, float16 logits). A few\n"
                f"rows ({len(info['outlier_rows'])}) carry activation outliers that the quantised copy clips.\n"
                f"Logits written to {base}\n"
                f"              and {cand};\n"
                "this is `logitdiv score` on them:\n\n"
            )
            sys.stdout.flush()
        inputs = {"base": base, "candidate": cand, "base_key": None, "candidate_key": None,
                  "demo": {"rows": args.rows, "classes": args.classes, "seed": args.seed,
                           "outlier_rows": info["outlier_rows"]}}
        with open_source(base, None, "BASE") as sa, open_source(cand, None, "CANDIDATE") as sb:
            return _run(args, options, sa, sb, "logitdiv demo", inputs)

    if args.dir:
        return go(args.dir)
    with tempfile.TemporaryDirectory(prefix="logitdiv-demo-") as tmp:
        return go(tmp)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status (the console script exits with it)."""
    try:
        parser = _parser()
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args))
    except _Exit as e:
        return e.code
    except KeyboardInterrupt:
        _say_error("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `logitdiv score … | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except (ValueError, TypeError, OSError, ImportError, KeyError, RuntimeError, MemoryError) as e:
        msg = str(e) or type(e).__name__
        if isinstance(e, KeyError) and e.args:
            msg = str(e.args[0])
        _say_error(msg)
        return 1
    except Exception as e:  # a bug: still one line, with the way to see the traceback
        if os.environ.get("LOGITDIV_DEBUG"):
            raise
        _say_error(f"unexpected {type(e).__name__}: {e} (set LOGITDIV_DEBUG=1 for the traceback)")
        return 1


if __name__ == "__main__":  # python -m logitdiv.scoring.cli
    sys.exit(main())
