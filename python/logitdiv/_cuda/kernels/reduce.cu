// The reductions over rows (rust/core/src/reduce.rs): a compensated sum of the row values in a
// fixed order (deterministic), the count of rows that count, and the "mean" correction of the
// gradients when some rows did not count.

#define RED_NONE 0
#define RED_SUM 1
#define RED_MEAN 2
#define RED_BATCHMEAN 3

// Neumaier's compensated sum; non-finite terms are added plainly so inf and NaN propagate.
struct CSum { double sum, comp; i64 counted; };

__device__ __forceinline__ void csum_add(CSum& c, double x) {
    double t = c.sum + x;
    if (ld_isfinite(t)) {
        if (fabs(c.sum) >= fabs(x)) c.comp += (c.sum - t) + x;
        else c.comp += (x - t) + c.sum;
    }
    c.sum = t;
}

// Sums `rows` row values with one block (blockDim.x a power of two ≤ 1024): thread i takes rows
// i, i + blockDim.x, ...; the partial sums merge in a fixed tree. Writes the reduced value to
// out[0] and, for "mean" with some rows not counting, the gradient correction rows / counted to
// factor[0] (1 otherwise).
template <class V>
__global__ void reduce_rows(const double* row_values, const u8* row_status, i64 rows, int reduction, V* out,
                            double* factor) {
    __shared__ double sums[1024];
    __shared__ double comps[1024];
    __shared__ i64 counts[1024];
    CSum c; c.sum = 0.0; c.comp = 0.0; c.counted = 0;
    for (i64 r = threadIdx.x; r < rows; r += blockDim.x) {
        csum_add(c, row_values[r]);
        c.counted += (row_status[r] & LD_COUNTS) ? 1 : 0;
    }
    sums[threadIdx.x] = c.sum; comps[threadIdx.x] = c.comp; counts[threadIdx.x] = c.counted;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            CSum a; a.sum = sums[threadIdx.x]; a.comp = comps[threadIdx.x]; a.counted = counts[threadIdx.x];
            csum_add(a, sums[threadIdx.x + half]);
            a.comp += comps[threadIdx.x + half];
            sums[threadIdx.x] = a.sum; comps[threadIdx.x] = a.comp;
            counts[threadIdx.x] = a.counted + counts[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x != 0) return;
    double total = ld_isfinite(sums[0]) ? sums[0] + comps[0] : sums[0];
    i64 counted = counts[0];
    double value = total, f = 1.0;
    if (reduction == RED_MEAN) {
        value = counted == 0 ? 0.0 : total / (double)counted;
        if (counted > 0 && counted != rows) f = (double)rows / (double)counted;
    } else if (reduction == RED_BATCHMEAN) {
        value = rows == 0 ? 0.0 : total / (double)rows;
    }
    out[0] = (V)value;
    if (factor) factor[0] = f;
}

// g *= factor[0] for n elements (grid-stride), skipped when the factor is 1.
template <class T>
__global__ void rescale(T* g, i64 n, const double* factor) {
    const double f = factor[0];
    if (f == 1.0) return;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        g[i] = from_f64<T>(to_f64(g[i]) * f);
    }
}
