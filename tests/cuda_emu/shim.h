// Host stand-ins for the CUDA built-ins the kernels use, so that their source compiles as plain
// C++ and runs one thread per block on the CPU (the emulator of tests/cuda_emu). A group is one
// thread: group_reduce is the identity, and split rows merge their chunks as on the GPU.
#include <cmath>
#include <cstring>

#define LD_HOST_EMULATION 1
#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static

struct ld_uint3 { unsigned int x, y, z; };
static ld_uint3 threadIdx = {0, 0, 0}, blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};

inline void __syncthreads() {}
template <class V> inline V __shfl_xor_sync(unsigned, V v, int) { return v; }

using std::exp; using std::expm1; using std::log; using std::log1p; using std::fabs; using std::fmax;
