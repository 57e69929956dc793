"""The CUDA backend's parts: the kernel sources (`kernels/`, compiled by NVRTC through CuPy),
their assembly (`source`), the launch arithmetic (`launch`) and the CuPy device (`device`).
The public functions are in `logitdiv.cuda`. Nothing here imports CuPy at import time."""
