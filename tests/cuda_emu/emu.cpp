// The emulator: the kernels' source compiled for the host, and one entry point that launches a
// kernel by its name expression the way cuLaunchKernel does: an array of pointers to the
// arguments' bytes. Each argument's size is checked against the kernel's parameter, so a
// mismatch between cuda.py's argument packing and a kernel signature fails here, on CPU.
#include "shim.h"
#include LD_KERNEL_SOURCE

#include <cstddef>
#include <cstring>
#include <utility>

namespace {

template <class... A, std::size_t... I>
void call(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<A*>(args[I])...);
}

// 0: ran; 1: wrong number of arguments; 2 + i: argument i has the wrong size.
template <class... A>
int launch(void (*k)(A...), long long grid, void** args, const long long* sizes, int nargs) {
    const long long expect[] = {(long long)sizeof(A)...};
    if (nargs != (int)sizeof...(A)) return 1;
    for (int i = 0; i < nargs; ++i)
        if (sizes[i] != expect[i]) return 2 + i;
    for (long long b = 0; b < grid; ++b) {
        blockIdx.x = (unsigned int)b;
        call(k, args, std::index_sequence_for<A...>{});
    }
    return 0;
}

}  // namespace

#define LD_ENTRY(expr) if (std::strcmp(name, #expr) == 0) return launch(expr, grid, args, sizes, nargs);
#define LD_ENTRY2(k, a, b) if (std::strcmp(name, #k "<" #a ", " #b ">") == 0) return launch(k<a, b>, grid, args, sizes, nargs);

extern "C" int ld_emu_launch(const char* name, long long grid, void** args, const long long* sizes, int nargs) {
    blockDim.x = 1;
    gridDim.x = (unsigned int)grid;
    threadIdx.x = 0;
#define LD_T(k) LD_ENTRY(k<f16>) LD_ENTRY(k<bf16>) LD_ENTRY(k<float>) LD_ENTRY(k<double>)
#define LD_TU(k) LD_ENTRY2(k, f16, float) LD_ENTRY2(k, f16, double) LD_ENTRY2(k, bf16, float) LD_ENTRY2(k, bf16, double) \
    LD_ENTRY2(k, float, float) LD_ENTRY2(k, float, double) LD_ENTRY2(k, double, float) LD_ENTRY2(k, double, double)
    LD_T(softmax_pair) LD_T(sigmoid_pair) LD_T(rescale)
    LD_TU(softmax_ce) LD_TU(bce) LD_TU(multilabel_ce)
    LD_ENTRY(reduce_rows<float>) LD_ENTRY(reduce_rows<double>)
    return -1;  // unknown name expression
}
