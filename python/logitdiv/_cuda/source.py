"""The CUDA C++ source of the kernels, its template instantiations and compile options.

The kernels live in ``kernels/*.cu`` beside this file (shipped in the wheel: maturin's
``python-source`` takes every file under ``python/logitdiv``). They include no header, so NVRTC
compiles them with no include path; the CPU tests compile the same text as host C++ (see
``tests/cuda_emu``)."""

from __future__ import annotations

import functools
import pathlib
from typing import Dict, List, Tuple

KERNEL_DIR = pathlib.Path(__file__).with_name("kernels")
# Concatenated in this order: later files use what earlier ones define.
FILES = ("common.cuh", "pairs.cu", "losses.cu", "reduce.cu")

# Options for NVRTC (CuPy adds the architecture of the device, e.g. -arch=compute_90).
OPTIONS: Tuple[str, ...] = ("--std=c++14",)

# Doubles per (row, chunk) slot of the partial-state buffer of split rows (LD_PARTIAL in common.cuh).
PARTIAL_DOUBLES = 16
# Row status bits (LD_COUNTS, LD_INVALID in common.cuh).
STATUS_COUNTS = 1
STATUS_INVALID = 2

# The C++ type of each logit dtype name, and of each label (target) dtype name.
LOGIT_TYPES: Dict[str, str] = {"float16": "f16", "bfloat16": "bf16", "float32": "float", "float64": "double"}
TARGET_TYPES: Dict[str, str] = {"float32": "float", "float64": "double"}
VALUE_TYPES: Dict[str, str] = {"float32": "float", "float64": "double"}

# kernel -> its template parameters: "T" (logits) or "TU" (logits, targets) or "V" (values)
KERNELS: Dict[str, str] = {
    "softmax_pair": "T",
    "sigmoid_pair": "T",
    "softmax_ce": "TU",
    "bce": "TU",
    "multilabel_ce": "TU",
    "reduce_rows": "V",
    "rescale": "T",
}


@functools.lru_cache(maxsize=None)
def source() -> str:
    """The whole translation unit."""
    return "\n".join((KERNEL_DIR / name).read_text() for name in FILES)


def name_expression(kernel: str, *types: str) -> str:
    """The name expression of one instantiation, e.g. ``softmax_pair<float>``."""
    return f"{kernel}<{', '.join(types)}>"


def name_expressions() -> List[str]:
    """Every instantiation the backend may launch."""
    out = []
    for kernel, params in KERNELS.items():
        if params == "T":
            out += [name_expression(kernel, t) for t in LOGIT_TYPES.values()]
        elif params == "TU":
            out += [name_expression(kernel, t, u) for t in LOGIT_TYPES.values() for u in TARGET_TYPES.values()]
        else:
            out += [name_expression(kernel, v) for v in VALUE_TYPES.values()]
    return out
