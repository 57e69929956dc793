// Shared device code of logitdiv's CUDA kernels: element types and conversions, the accurate
// scalar forms of MATH.md (ported from rust/core/src/math.rs), row tiling and group reductions.
//
// The source is compiled by NVRTC (through cupy.RawModule) and, for the CPU tests, by a host C++
// compiler with LD_HOST_EMULATION defined (tests/cuda_emu/shim.h supplies threadIdx & co.; one
// thread per block, so every group reduction is the identity and only merges of chunks remain).
// It includes no header: NVRTC builds it with no include path.

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

// Per (row, chunk) slot of the partial-state buffer of split rows, in doubles (cuda.py agrees).
#define LD_PARTIAL 16

// Row status bits written per row (cuda.py reads them).
#define LD_COUNTS 1   // the row counts for reduction "mean"
#define LD_INVALID 2  // a label, weight or pos_weight of this row is invalid (cuda.py raises)

// ---------------------------------------------------------------------------------------------
// element types: float, double, and the 16-bit types as their bits

struct f16 { unsigned short bits; };
struct bf16 { unsigned short bits; };

__device__ __forceinline__ u64 ld_bits(double x) {
#ifdef LD_HOST_EMULATION
    u64 u; memcpy(&u, &x, 8); return u;
#else
    return (u64)__double_as_longlong(x);
#endif
}

__device__ __forceinline__ double ld_double(u64 u) {
#ifdef LD_HOST_EMULATION
    double x; memcpy(&x, &u, 8); return x;
#else
    return __longlong_as_double((long long)u);
#endif
}

__device__ __forceinline__ double ld_inf() { return ld_double(0x7ff0000000000000ULL); }
__device__ __forceinline__ double ld_nan() { return ld_double(0x7ff8000000000000ULL); }
__device__ __forceinline__ bool ld_isfinite(double x) { return fabs(x) < ld_inf(); }  // false for NaN

__device__ __forceinline__ double to_f64(float x) { return (double)x; }
__device__ __forceinline__ double to_f64(double x) { return x; }

// IEEE binary16 to double, exactly.
__device__ __forceinline__ double to_f64(f16 h) {
    u64 sign = (u64)(h.bits >> 15) << 63;
    u32 e = (h.bits >> 10) & 31u, f = h.bits & 1023u;
    if (e == 31u) return ld_double(sign | 0x7ff0000000000000ULL | ((u64)f << 42));  // inf, NaN
    if (e == 0u) {
        double v = (double)f * 5.9604644775390625e-08;  // f · 2^-24: subnormal (or zero)
        return sign ? -v : v;
    }
    return ld_double(sign | ((u64)(e + 1008u) << 52) | ((u64)f << 42));  // 1008 = 1023 − 15
}

// bfloat16 (the high half of a float32) to double, exactly.
__device__ __forceinline__ double to_f64(bf16 h) {
    u64 sign = (u64)(h.bits >> 15) << 63;
    u32 e = (h.bits >> 7) & 255u, f = h.bits & 127u;
    if (e == 255u) return ld_double(sign | 0x7ff0000000000000ULL | ((u64)f << 45));
    if (e == 0u) {
        double v = (double)f * 9.183549615799121e-41;  // f · 2^-133
        return sign ? -v : v;
    }
    return ld_double(sign | ((u64)(e + 896u) << 52) | ((u64)f << 45));  // 896 = 1023 − 127
}

// double to a binary format with EXP bits of exponent and FRAC bits of fraction (≤ 16 bits in
// all), rounded to nearest even, directly from the double (no double rounding through float).
template <int EXP, int FRAC>
__device__ __forceinline__ unsigned short ld_narrow(double x) {
    const int bias = (1 << (EXP - 1)) - 1;
    const u32 inf = ((1u << EXP) - 1u) << FRAC;
    u64 u = ld_bits(x);
    u32 sign = (u32)(u >> 48) & 0x8000u;
    u64 a = u & 0x7fffffffffffffffULL;
    if (a >= 0x7ff0000000000000ULL) return (unsigned short)(sign | inf | (a > 0x7ff0000000000000ULL ? 1u << (FRAC - 1) : 0u));
    int e = (int)(a >> 52) - 1023;
    if (e > bias) return (unsigned short)(sign | inf);
    u64 mant = a & 0x000fffffffffffffULL;
    int shift;
    u32 base;
    if (e >= 1 - bias) {  // normal in the narrow format
        shift = 52 - FRAC;
        base = (u32)(e + bias) << FRAC;
    } else {              // subnormal (or zero) in the narrow format
        shift = 52 - FRAC + (1 - bias - e);
        if (shift > 53) return (unsigned short)sign;
        base = 0u;
        mant |= 1ULL << 52;
    }
    u64 q = mant >> shift, rem = mant & ((1ULL << shift) - 1ULL), half = 1ULL << (shift - 1);
    q += (rem > half || (rem == half && (q & 1ULL))) ? 1ULL : 0ULL;
    return (unsigned short)(sign | (base + (u32)q));  // a carry moves into the exponent (and to inf)
}

template <class T> __device__ __forceinline__ T from_f64(double x);
template <> __device__ __forceinline__ float from_f64<float>(double x) { return (float)x; }
template <> __device__ __forceinline__ double from_f64<double>(double x) { return x; }
template <> __device__ __forceinline__ f16 from_f64<f16>(double x) { f16 h; h.bits = ld_narrow<5, 10>(x); return h; }
template <> __device__ __forceinline__ bf16 from_f64<bf16>(double x) { bf16 h; h.bits = ld_narrow<8, 7>(x); return h; }

// The dtype of per-row values: double for double logits, float otherwise.
template <class T> struct ValueOf { typedef float type; };
template <> struct ValueOf<double> { typedef double type; };

// ---------------------------------------------------------------------------------------------
// the accurate scalar forms (rust/core/src/math.rs, divergence/softmax.rs)

#define LD_SMALL 0.5
#define LD_MAX_SCALED_LOGIT 1e300

__device__ __forceinline__ double phi_series(double w) {
    // Σ_{k≥2} (−w)^k / k!, Horner in x = −w, 15 terms
    const double x = -w;
    double acc = 1.0 / 20922789888000.0;
    acc = acc * x + 1.0 / 1307674368000.0;
    acc = acc * x + 1.0 / 87178291200.0;
    acc = acc * x + 1.0 / 6227020800.0;
    acc = acc * x + 1.0 / 479001600.0;
    acc = acc * x + 1.0 / 39916800.0;
    acc = acc * x + 1.0 / 3628800.0;
    acc = acc * x + 1.0 / 362880.0;
    acc = acc * x + 1.0 / 40320.0;
    acc = acc * x + 1.0 / 5040.0;
    acc = acc * x + 1.0 / 720.0;
    acc = acc * x + 1.0 / 120.0;
    acc = acc * x + 1.0 / 24.0;
    acc = acc * x + 1.0 / 6.0;
    acc = acc * x + 1.0 / 2.0;
    return acc * x * x;
}

// a · φ(r), r = log a − log c: the non-negative summand of KL(a‖c) (math.rs kl_term).
__device__ __forceinline__ double kl_term(double a, double c, double r) {
    if (r == ld_inf()) return ld_inf();
    if (a == 0.0) return c;
    if (fabs(r) < LD_SMALL) return a * phi_series(r);
    double v = a * (r - 1.0) + c;
    return v < 0.0 ? 0.0 : v;
}

// p − q with w = log p − log q, free of cancellation near w = 0.
__device__ __forceinline__ double prob_diff(double p, double q, double w) {
    return fabs(w) < LD_SMALL ? -p * expm1(-w) : p - q;
}

// (p − q) · w ≥ 0, the summand of the symmetric KL.
__device__ __forceinline__ double sym_term(double p, double q, double w) {
    if (fabs(w) == ld_inf()) return ld_inf();
    if (w >= 0.0) return p == 0.0 ? 0.0 : p * w * -expm1(-w);
    return q == 0.0 ? 0.0 : q * -w * -expm1(w);
}

__device__ __forceinline__ double sigmoid(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

__device__ __forceinline__ double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

// σ(a) − σ(b) given d = a − b, without cancellation when a ≈ b.
__device__ __forceinline__ double sigmoid_diff_d(double a, double b, double d) {
    if (fabs(d) <= 1.0) return sigmoid(b) * sigmoid(-a) * expm1(d);
    if (a >= 0.0 && b >= 0.0) return sigmoid(-b) - sigmoid(-a);
    return sigmoid(a) - sigmoid(b);
}

// log σ(a) − log σ(b) given d = a − b.
__device__ __forceinline__ double log_sigmoid_ratio_d(double a, double b, double d) {
    if (fabs(d) <= 1.0) return log1p(sigmoid(-a) * expm1(d));
    return softplus(-b) - softplus(-a);
}

// Whether logit x, scaled to a = x/τ, makes its row NaN (NaN, +inf, or beyond ±1e300); only −inf
// itself marks an absent class.
__device__ __forceinline__ bool out_of_domain(double x, double a) {
    return (a != a || fabs(a) > LD_MAX_SCALED_LOGIT) && x != -ld_inf();
}

// c · f, taken as 0 when c = 0 whatever f is.
__device__ __forceinline__ double times(double c, double f) { return c == 0.0 ? 0.0 : c * f; }

// ---------------------------------------------------------------------------------------------
// rows, chunks and threads

// What one thread works on: classes lo + tid, lo + tid + nthreads, ... < hi of row `row`.
struct Tile {
    i64 row;
    i64 lo, hi;
    int chunk;
    int tid, nthreads;
    bool block_mode;  // the whole block works on this row (else one warp does)
    bool active;
};

// warp_rows != 0: each warp of the block takes one row (short rows, chunks = 1); else the block
// takes chunk (blockIdx.x mod chunks) of row (blockIdx.x / chunks), chunk_len classes long.
__device__ __forceinline__ Tile make_tile(i64 rows, i64 cols, int warp_rows, int chunks, i64 chunk_len) {
    Tile t;
    if (warp_rows) {
        i64 per_block = blockDim.x / 32;
        t.row = (i64)blockIdx.x * per_block + threadIdx.x / 32;
        t.chunk = 0;
        t.lo = 0;
        t.hi = cols;
        t.tid = threadIdx.x % 32;
        t.nthreads = 32;
        t.block_mode = false;
    } else {
        t.row = (i64)blockIdx.x / chunks;
        t.chunk = (int)((i64)blockIdx.x % chunks);
        t.lo = (i64)t.chunk * chunk_len;
        t.hi = t.lo + chunk_len < cols ? t.lo + chunk_len : cols;
        t.tid = threadIdx.x;
        t.nthreads = blockDim.x;
        t.block_mode = true;
    }
    t.active = t.row < rows;
    return t;
}

// Butterfly reduction over a warp with `merge` (each state type defines merge and shfl_xor). Both
// lanes of a pair merge (lower lane's state, upper lane's state) in that order, so every lane ends
// with bitwise the same result even where the compiler contracts a merge's arithmetic into FMAs:
// the group's later branches (and the shuffles after them) stay uniform.
template <class S>
__device__ __forceinline__ S warp_reduce(S v) {
#ifndef LD_HOST_EMULATION
    const int lane = threadIdx.x % 32;
    for (int off = 16; off > 0; off >>= 1) {
        S other = shfl_xor(v, off);
        v = (lane & off) ? merge(other, v) : merge(v, other);
    }
#endif
    return v;
}

// Reduction over the group working on a row (a warp, or the whole block); every thread of the
// group gets the result. In block mode every thread of the block must call it.
template <class S>
__device__ __forceinline__ S group_reduce(S v, bool block_mode) {
    v = warp_reduce(v);
    if (!block_mode) return v;
    __shared__ S buf[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
    __syncthreads();  // the previous reduction's readers are done with buf
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    S r = buf[0];
    for (int i = 1; i < nw; ++i) r = merge(r, buf[i]);  // same order in every thread
    return r;
}

__device__ __forceinline__ double shfl_d(double v, int off) { return __shfl_xor_sync(0xffffffffu, v, off); }
__device__ __forceinline__ i64 shfl_l(i64 v, int off) { return __shfl_xor_sync(0xffffffffu, v, off); }
__device__ __forceinline__ int shfl_i(int v, int off) { return __shfl_xor_sync(0xffffffffu, v, off); }

// A plain double sum (of row terms), as a reduction state.
struct Sum1 { double v; };
__device__ __forceinline__ Sum1 merge(Sum1 a, Sum1 b) { Sum1 r; r.v = a.v + b.v; return r; }
__device__ __forceinline__ Sum1 shfl_xor(Sum1 a, int off) { a.v = shfl_d(a.v, off); return a; }

// Where a row's results go: a value of type V per row (reduction "none") or a double per row (to
// be reduced), and the status bits.
template <class V>
__device__ __forceinline__ void write_row(const Tile& t, V* values, double* row_values, u8* row_status,
                                          double value, bool counts, bool invalid) {
    if (t.tid != 0 || t.chunk != 0) return;
    if (values) values[t.row] = (V)value;
    if (row_values) row_values[t.row] = value;
    row_status[t.row] = (u8)((counts ? LD_COUNTS : 0) | (invalid ? LD_INVALID : 0));
}

// Writes x into the gradient elements of this thread's part of the tile (g may be null).
template <class T>
__device__ __forceinline__ void fill_tile(const Tile& t, T* g, i64 g_stride, double x) {
    if (!g) return;
    T v = from_f64<T>(x);
    for (i64 i = t.lo + t.tid; i < t.hi; i += t.nthreads) g[t.row * g_stride + i] = v;
}

// Whether the row is one that does not count (`skip`: masked out, or labelled ignore_index); if so,
// writes its results: value 0, not counted, zero gradient (phase 1 of a split row has no
// statistics to store for it).
template <class T, class V>
__device__ __forceinline__ bool skipped_row(bool skip, const Tile& t, int phase, V* values, double* row_values,
                                            u8* row_status, T* g, i64 cols) {
    if (!skip) return false;
    if (phase == 1) return true;
    write_row(t, values, row_values, row_status, 0.0, false, false);
    fill_tile(t, g, cols, 0.0);
    return true;
}

// ---------------------------------------------------------------------------------------------
// rows split across blocks: each chunk stores its partial state (LD_PARTIAL doubles) in one launch
// and a later launch merges them

__device__ __forceinline__ double* chunk_slot(double* partial, const Tile& t, int chunks) {
    return partial + (t.row * chunks + t.chunk) * LD_PARTIAL;
}

// The state of a split row: its chunks' partial states, read by `load` and merged in chunk order.
template <class S>
__device__ __forceinline__ S merged_chunks(const double* partial, const Tile& t, int chunks, S (*load)(const double*)) {
    const double* row = partial + t.row * chunks * LD_PARTIAL;
    S s = load(row);
    for (int c = 1; c < chunks; ++c) s = merge(s, load(row + c * LD_PARTIAL));
    return s;
}

// One reduction pass over a row (numbered `pass`, from 1) under the launch's phase: phase 0 sweeps
// the whole row; a split row sweeps each chunk in the pass's own phase and stores the chunk's
// state (the kernel stops there: false), and merges the chunks' states in the phases after it.
template <class S, class Sweep>
__device__ __forceinline__ bool row_pass(S& state, int pass, int phase, const Tile& t, double* partial, int chunks,
                                         Sweep sweep, void (*store)(double*, const S&), S (*load)(const double*)) {
    if (phase == 0 || phase == pass) {
        state = group_reduce(sweep(), t.block_mode);
        if (phase == 0) return true;
        if (t.tid == 0) store(chunk_slot(partial, t, chunks), state);
        return false;
    }
    state = merged_chunks(partial, t, chunks, load);
    return true;
}
