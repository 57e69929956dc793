// Divergences between two logit rows (rust/core/src/divergence): the softmax family (kl, sym_kl,
// js) and the sigmoid family (sigmoid_kl, sigmoid_sym_kl).
//
// Every kernel takes `phase`: 0 runs a whole row in one group (a warp or a block); a row split into
// `chunks` chunks runs phase 1 (partial statistics of each chunk into `partial`), for the softmax
// family phase 2 (the second sweep's partial sums, given the merged statistics) and phase 3 (the
// merged results: the value, and the gradients of each chunk). Partial states merge associatively
// and in a fixed order, so every block of a row sees the same merged state.

// ---------------------------------------------------------------------------------------------
// softmax family

// Online log-sum-exp of one row x with D = Σ e^{x − max} expm1(y − x) for the other row y
// (softmax.rs `Online`).
struct Online { double max, sum, dsum; int ok; };

__device__ __forceinline__ Online online_empty() { Online o; o.max = -ld_inf(); o.sum = 0.0; o.dsum = 0.0; o.ok = 1; return o; }

__device__ __forceinline__ void online_push(Online& o, double x, double em) {
    if (x > o.max) {
        double r = exp(o.max - x);
        o.sum = o.sum * r + 1.0;
        o.dsum = o.dsum * r + em;
        o.max = x;
    } else if (x > -ld_inf()) {
        double e = exp(x - o.max);
        o.sum += e;
        o.dsum += e * em;
    } else {
        o.ok = 0;
    }
}

__device__ __forceinline__ Online merge(Online a, Online b) {
    Online r;
    r.ok = a.ok & b.ok;
    if (a.max == -ld_inf() || b.max == -ld_inf()) {  // one side is empty (its sums are 0)
        r.max = fmax(a.max, b.max);
        r.sum = a.sum + b.sum;
        r.dsum = a.dsum + b.dsum;
        return r;
    }
    r.max = fmax(a.max, b.max);
    double ea = exp(a.max - r.max), eb = exp(b.max - r.max);
    r.sum = a.sum * ea + b.sum * eb;
    r.dsum = a.dsum * ea + b.dsum * eb;
    return r;
}

__device__ __forceinline__ Online shfl_xor(Online o, int off) {
    o.max = shfl_d(o.max, off); o.sum = shfl_d(o.sum, off); o.dsum = shfl_d(o.dsum, off); o.ok = shfl_i(o.ok, off);
    return o;
}

// e^{lse(y) − lse(x)} − 1, or false where D does not describe it.
__device__ __forceinline__ bool online_ratio(const Online& o, double& r) {
    r = o.dsum / o.sum;
    return o.ok && ld_isfinite(r);
}

// Sweep-1 statistics of a softmax pair row.
struct PairStats { Online a, b; i64 n; int bad; };

__device__ __forceinline__ PairStats merge(PairStats x, PairStats y) {
    PairStats r; r.a = merge(x.a, y.a); r.b = merge(x.b, y.b); r.n = x.n + y.n; r.bad = x.bad | y.bad; return r;
}
__device__ __forceinline__ PairStats shfl_xor(PairStats s, int off) {
    s.a = shfl_xor(s.a, off); s.b = shfl_xor(s.b, off); s.n = shfl_l(s.n, off); s.bad = shfl_i(s.bad, off);
    return s;
}

// Sweep-2 sums: kl: KL(p‖q); sym_kl: Σ (p−q)w, KL(p‖q), KL(q‖p); js: KL(p‖m), KL(q‖m).
struct PairSums { double first, second, third; };
__device__ __forceinline__ PairSums merge(PairSums x, PairSums y) {
    PairSums r; r.first = x.first + y.first; r.second = x.second + y.second; r.third = x.third + y.third; return r;
}
__device__ __forceinline__ PairSums shfl_xor(PairSums s, int off) {
    s.first = shfl_d(s.first, off); s.second = shfl_d(s.second, off); s.third = shfl_d(s.third, off); return s;
}

__device__ __forceinline__ void store_pair_stats(double* p, const PairStats& s) {
    p[0] = s.a.max; p[1] = s.a.sum; p[2] = s.a.dsum; p[3] = s.a.ok;
    p[4] = s.b.max; p[5] = s.b.sum; p[6] = s.b.dsum; p[7] = s.b.ok;
    p[8] = (double)s.n; p[9] = s.bad;
}
__device__ __forceinline__ PairStats load_pair_stats(const double* p) {
    PairStats s;
    s.a.max = p[0]; s.a.sum = p[1]; s.a.dsum = p[2]; s.a.ok = (int)p[3];
    s.b.max = p[4]; s.b.sum = p[5]; s.b.dsum = p[6]; s.b.ok = (int)p[7];
    s.n = (i64)p[8]; s.bad = (int)p[9];
    return s;
}
__device__ __forceinline__ void store_pair_sums(double* p, const PairSums& s) { p[10] = s.first; p[11] = s.second; p[12] = s.third; }
__device__ __forceinline__ PairSums load_pair_sums(const double* p) { PairSums s; s.first = p[10]; s.second = p[11]; s.third = p[12]; return s; }

#define KIND_KL 0
#define KIND_SYM_KL 1
#define KIND_JS 2

// What the merged statistics say about a row before the second sweep.
struct PairRow {
    int special;   // 0: an ordinary row; 1: NaN (bad value, or no distribution); 2: no class present
    double max_a, max_b, ln_a, ln_b, dlse, dlse_err;
};

__device__ __forceinline__ PairRow pair_row(const PairStats& st) {
    PairRow r;
    r.special = 0;
    if (st.bad) { r.special = 1; return r; }
    if (st.n == 0) { r.special = 2; return r; }
    if (st.a.max == -ld_inf() || st.b.max == -ld_inf()) { r.special = 1; return r; }
    r.max_a = st.a.max; r.max_b = st.b.max; r.ln_a = log(st.a.sum); r.ln_b = log(st.b.sum);
    // lse(a) − lse(b) (softmax.rs lse_diff)
    double rb, ra;
    if (online_ratio(st.b, rb) && rb > -0.5) {
        r.dlse = log1p(rb); r.dlse_err = fabs(r.dlse);
    } else if (online_ratio(st.a, ra) && ra > -0.5) {
        r.dlse = -log1p(ra); r.dlse_err = fabs(r.dlse);
    } else {
        double dm = st.a.max - st.b.max;
        r.dlse = dm + (r.ln_a - r.ln_b);
        r.dlse_err = fabs(dm) + fabs(r.ln_a) + fabs(r.ln_b);
    }
    return r;
}

// p, q and w = log p − log q of one class (softmax.rs `class`).
__device__ __forceinline__ void pair_class(const PairRow& r, double a, double b, double d, double& p, double& q, double& w) {
    double ra = a - r.max_a, rb = b - r.max_b;
    double lp = ra - r.ln_a, lq = rb - r.ln_b;
    w = (fabs(d) + r.dlse_err <= fabs(ra) + fabs(rb) + fabs(r.ln_a) + fabs(r.ln_b)) ? d - r.dlse : lp - lq;
    p = exp(lp);
    q = exp(lq);
}

// a = log p − log m and b = log q − log m of the JS mixture, from w.
__device__ __forceinline__ void js_log_ratios(double w, double beta, double& ra, double& rb) {
    if (w >= 0.0) {
        ra = -log1p((1.0 - beta) * expm1(-w));
        rb = ra - w;
    } else {
        rb = -log1p(beta * expm1(w));
        ra = rb + w;
    }
}

template <class T>
__device__ __forceinline__ PairStats pair_sweep1(const Tile& tl, const T* s, const T* t, const u8* mask, double inv_tau) {
    PairStats st; st.a = online_empty(); st.b = online_empty(); st.n = 0; st.bad = 0;
    for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
        if (mask && !mask[i]) continue;
        double x = to_f64(s[i]), y = to_f64(t[i]);
        double a = x * inv_tau, b = y * inv_tau, d = (x - y) * inv_tau;
        if (out_of_domain(x, a) || out_of_domain(y, b)) { st.bad = 1; continue; }
        if (a == -ld_inf() && b == -ld_inf()) continue;
        st.n += 1;
        online_push(st.a, a, expm1(-d));
        online_push(st.b, b, expm1(d));
    }
    return st;
}

template <class T>
__device__ __forceinline__ PairSums pair_sweep2(const Tile& tl, const T* s, const T* t, const u8* mask, double inv_tau,
                                                const PairRow& r, int kind, double beta, bool want_grad) {
    PairSums sums; sums.first = 0.0; sums.second = 0.0; sums.third = 0.0;
    for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
        if (mask && !mask[i]) continue;
        double x = to_f64(s[i]), y = to_f64(t[i]);
        double a = x * inv_tau, b = y * inv_tau, d = (x - y) * inv_tau;
        if (a == -ld_inf() && b == -ld_inf()) continue;
        double p, q, w;
        pair_class(r, a, b, d, p, q, w);
        if (kind == KIND_KL) {
            sums.first += kl_term(p, q, w);
        } else if (kind == KIND_SYM_KL) {
            sums.first += sym_term(p, q, w);
            if (want_grad) {
                sums.second += kl_term(p, q, w);
                sums.third += kl_term(q, p, -w);
            }
        } else {
            double ra, rb;
            js_log_ratios(w, beta, ra, rb);
            double m = beta * p + (1.0 - beta) * q;
            sums.first += kl_term(p, m, ra);
            sums.second += kl_term(q, m, rb);
        }
    }
    return sums;
}

__device__ __forceinline__ double pair_value(const PairSums& sums, int kind, double beta) {
    if (kind == KIND_JS) return (beta == 0.0 || beta == 1.0) ? 0.0 : beta * sums.first + (1.0 - beta) * sums.second;
    return sums.first;
}

template <class T>
__device__ __forceinline__ void pair_sweep3(const Tile& tl, const T* s, const T* t, const u8* mask, double inv_tau,
                                            const PairRow& r, const PairSums& sums, int kind, double beta,
                                            double grad_scale, T* gs, T* gt, i64 cols) {
    const bool js_trivial = beta == 0.0 || beta == 1.0;
    for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
        double x = to_f64(s[i]), y = to_f64(t[i]);
        double a = x * inv_tau, b = y * inv_tau, d = (x - y) * inv_tau;
        double ds = 0.0, dt = 0.0;
        if (!(mask && !mask[i]) && !(a == -ld_inf() && b == -ld_inf())) {
            double p, q, w;
            pair_class(r, a, b, d, p, q, w);
            double pd = prob_diff(p, q, w);
            if (kind == KIND_KL) {
                ds = p == 0.0 ? 0.0 : p * (w - sums.first);
                dt = -pd;
            } else if (kind == KIND_SYM_KL) {
                ds = (p == 0.0 ? 0.0 : p * (w - sums.second)) + pd;
                dt = -(q == 0.0 ? 0.0 : q * (w + sums.third)) - pd;
            } else if (!js_trivial) {
                double ra, rb;
                js_log_ratios(w, beta, ra, rb);
                ds = beta * (p == 0.0 ? 0.0 : p * (ra - sums.first));
                dt = (1.0 - beta) * (q == 0.0 ? 0.0 : q * (rb - sums.second));
            }
        }
        i64 at = tl.row * cols + i;
        if (gs) gs[at] = from_f64<T>(grad_scale * ds);
        if (gt) gt[at] = from_f64<T>(grad_scale * dt);
    }
}

// kl (kind 0), sym_kl (1), js (2) of rows s, t (row strides in elements; mask: uint8 per class
// with its row stride, or null); gradients gs, gt (C-contiguous, or null) scaled by grad_scale.
template <class T>
__global__ void softmax_pair(const T* s, i64 s_stride, const T* t, i64 t_stride, const u8* mask, i64 mask_stride,
                             i64 rows, i64 cols, int kind, double inv_tau, double beta, double grad_scale,
                             T* gs, T* gt, typename ValueOf<T>::type* values, double* row_values, u8* row_status,
                             int phase, int warp_rows, int chunks, i64 chunk_len, double* partial) {
    const Tile tl = make_tile(rows, cols, warp_rows, chunks, chunk_len);
    if (!tl.active) return;  // uniform over the group
    const T* sr = s + tl.row * s_stride;
    const T* tr = t + tl.row * t_stride;
    const u8* mr = mask ? mask + tl.row * mask_stride : (const u8*)0;
    const bool want_grad = gs || gt;

    PairStats st;
    if (!row_pass(st, 1, phase, tl, partial, chunks, [&] { return pair_sweep1(tl, sr, tr, mr, inv_tau); },
                  store_pair_stats, load_pair_stats))
        return;
    const PairRow r = pair_row(st);
    if (r.special) {
        if (phase == 2) return;
        bool nan = r.special == 1;
        write_row(tl, values, row_values, row_status, nan ? ld_nan() : 0.0, nan, false);
        fill_tile(tl, gs, cols, nan ? ld_nan() : 0.0);
        fill_tile(tl, gt, cols, nan ? ld_nan() : 0.0);
        return;
    }
    PairSums sums;
    if (!row_pass(sums, 2, phase, tl, partial, chunks,
                  [&] { return pair_sweep2(tl, sr, tr, mr, inv_tau, r, kind, beta, want_grad); },
                  store_pair_sums, load_pair_sums))
        return;
    const double value = pair_value(sums, kind, beta);
    write_row(tl, values, row_values, row_status, value, true, false);
    if (!want_grad) return;
    if (!ld_isfinite(value)) {
        fill_tile(tl, gs, cols, ld_nan());
        fill_tile(tl, gt, cols, ld_nan());
        return;
    }
    pair_sweep3(tl, sr, tr, mr, inv_tau, r, sums, kind, beta, grad_scale, gs, gt, cols);
}

// ---------------------------------------------------------------------------------------------
// sigmoid family: every class an independent Bernoulli pair, so value and gradients come from
// one sweep (sigmoid.rs); a row that turns out NaN or infinite has its gradients overwritten.

// Partial state of an elementwise row: Σ terms, classes present, bad value, invalid argument.
struct ElemStats { double value; i64 n; int bad; int invalid; };
__device__ __forceinline__ ElemStats elem_empty() { ElemStats e; e.value = 0.0; e.n = 0; e.bad = 0; e.invalid = 0; return e; }
__device__ __forceinline__ ElemStats merge(ElemStats x, ElemStats y) {
    ElemStats r; r.value = x.value + y.value; r.n = x.n + y.n; r.bad = x.bad | y.bad; r.invalid = x.invalid | y.invalid; return r;
}
__device__ __forceinline__ ElemStats shfl_xor(ElemStats e, int off) {
    e.value = shfl_d(e.value, off); e.n = shfl_l(e.n, off); e.bad = shfl_i(e.bad, off); e.invalid = shfl_i(e.invalid, off);
    return e;
}
__device__ __forceinline__ void store_elem(double* p, const ElemStats& e) { p[0] = e.value; p[1] = (double)e.n; p[2] = e.bad; p[3] = e.invalid; }
__device__ __forceinline__ ElemStats load_elem(const double* p) {
    ElemStats e; e.value = p[0]; e.n = (i64)p[1]; e.bad = (int)p[2]; e.invalid = (int)p[3]; return e;
}

// The merged state of a split row (phase 3), or this tile's reduced state (phase 0).
__device__ __forceinline__ ElemStats elem_finish_state(const Tile& tl, ElemStats mine, int phase, int chunks, const double* partial) {
    if (phase == 0) return group_reduce(mine, tl.block_mode);
    return merged_chunks(partial, tl, chunks, load_elem);
}

// Writes an elementwise row's result: value (NaN when bad), and NaN gradients where the value is
// not finite (sigmoid.rs, bce.rs).
template <class T, class V>
__device__ __forceinline__ void elem_write(const Tile& tl, const ElemStats& e, T* g0, T* g1, i64 cols,
                                           V* values, double* row_values, u8* row_status) {
    double value = e.bad ? ld_nan() : e.value;
    bool counts = e.bad || e.n > 0 || !ld_isfinite(value);
    write_row(tl, values, row_values, row_status, value, counts, e.invalid != 0);
    if (!ld_isfinite(value)) {
        fill_tile(tl, g0, cols, ld_nan());
        fill_tile(tl, g1, cols, ld_nan());
    }
}

#define KIND_SIGMOID_KL 0
#define KIND_SIGMOID_SYM_KL 1

// σ'(x) · y, 0 where σ'(x) is 0 whatever y is.
__device__ __forceinline__ double dsigmoid_times(double x, double y) {
    double d = sigmoid(x) * sigmoid(-x);
    return d == 0.0 ? 0.0 : d * y;
}

// sigmoid_kl (kind 0) and sigmoid_sym_kl (1); weights: double per class with its row stride, or
// null. Phases: 0, or 1 then 3 (there is no second sweep).
template <class T>
__global__ void sigmoid_pair(const T* s, i64 s_stride, const T* t, i64 t_stride, const u8* mask, i64 mask_stride,
                             const double* weights, i64 w_stride, i64 rows, i64 cols, int kind, double inv_tau,
                             double grad_scale, T* gs, T* gt, typename ValueOf<T>::type* values, double* row_values,
                             u8* row_status, int phase, int warp_rows, int chunks, i64 chunk_len, double* partial) {
    const Tile tl = make_tile(rows, cols, warp_rows, chunks, chunk_len);
    if (!tl.active) return;
    const T* sr = s + tl.row * s_stride;
    const T* tr = t + tl.row * t_stride;
    const u8* mr = mask ? mask + tl.row * mask_stride : (const u8*)0;
    const double* wr = weights ? weights + tl.row * w_stride : (const double*)0;
    ElemStats e = elem_empty();
    if (phase <= 1) {
        for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
            double weight = wr ? wr[i] : 1.0;
            if (!(weight >= 0.0 && ld_isfinite(weight))) e.invalid = 1;
            double x = to_f64(sr[i]), y = to_f64(tr[i]);
            double a = x * inv_tau, b = y * inv_tau;
            double term = 0.0, ds = 0.0, dt = 0.0;
            bool excluded = (mr && !mr[i]) || weight == 0.0;
            if (excluded) {
            } else if (out_of_domain(x, a) || out_of_domain(y, b)) {
                e.bad = 1;
            } else if (a == -ld_inf() && b == -ld_inf()) {
            } else {
                e.n += 1;
                double d = (x - y) * inv_tau;
                if (kind == KIND_SIGMOID_KL) {
                    double on = kl_term(sigmoid(a), sigmoid(b), log_sigmoid_ratio_d(a, b, d));
                    double off = kl_term(sigmoid(-a), sigmoid(-b), log_sigmoid_ratio_d(-a, -b, -d));
                    term = on + off;
                    ds = dsigmoid_times(a, d);
                    dt = sigmoid_diff_d(b, a, -d);
                } else {
                    double diff = sigmoid_diff_d(a, b, d);
                    term = (a == -ld_inf() || b == -ld_inf()) ? ld_inf() : d * diff;
                    ds = dsigmoid_times(a, d) + diff;
                    dt = dsigmoid_times(b, -d) - diff;
                }
            }
            e.value += weight * term;
            i64 at = tl.row * cols + i;
            if (gs) gs[at] = from_f64<T>(grad_scale * (weight * ds));
            if (gt) gt[at] = from_f64<T>(grad_scale * (weight * dt));
        }
        if (phase == 1) {
            e = group_reduce(e, tl.block_mode);
            if (tl.tid == 0) store_elem(chunk_slot(partial, tl, chunks), e);
            return;
        }
    }
    e = elem_finish_state(tl, e, phase, chunks, partial);
    elem_write(tl, e, gs, gt, cols, values, row_values, row_status);
}
