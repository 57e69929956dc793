// Losses against labels (rust/core/src/loss): softmax cross-entropy (class indices with
// ignore_index and label smoothing, or probabilities), binary cross-entropy, Su's multilabel
// softmax cross-entropy. Phases as in pairs.cu: 0 (whole row), or 1 then 3 (split rows).
//
// A row excluded by the row mask (or labelled ignore_index) gives 0, zero gradients and does not
// count; a label, weight or pos_weight out of its range sets LD_INVALID in the row's status (the
// caller raises ValueError naming the row).

// ---------------------------------------------------------------------------------------------
// softmax cross-entropy (softmax_ce.rs, online.rs MaxRest)

// log Σ e^{x} as the max M and R = Σ_{i ≠ argmax} e^{x_i − M}, with the label's sums
// a = Σ y_i (M − x_i), b = Σ (M − x_i) (shifted when M moves), n classes present, ysum = Σ y_i.
struct CeStats { double max, rest, ysum, a, b; i64 n; int bad, unsupported, invalid; };

__device__ __forceinline__ CeStats ce_empty() {
    CeStats c; c.max = -ld_inf(); c.rest = 0.0; c.ysum = 0.0; c.a = 0.0; c.b = 0.0; c.n = 0; c.bad = 0; c.unsupported = 0; c.invalid = 0;
    return c;
}

__device__ __forceinline__ void ce_push(CeStats& c, double x, double y) {
    if (x > c.max) {
        double shift = x - c.max;
        if (c.ysum > 0.0) c.a += c.ysum * shift;
        if (c.n > 0) c.b += (double)c.n * shift;
        c.rest = (c.rest + 1.0) * exp(c.max - x);
        c.max = x;
    } else {
        c.rest += exp(x - c.max);
    }
    c.n += 1;
    c.ysum += y;
    c.a += y * (c.max - x);
    c.b += c.max - x;
}

__device__ __forceinline__ CeStats merge(CeStats x, CeStats y) {
    CeStats r;
    r.bad = x.bad | y.bad; r.unsupported = x.unsupported | y.unsupported; r.invalid = x.invalid | y.invalid;
    r.n = x.n + y.n; r.ysum = x.ysum + y.ysum;
    if (x.n == 0 || y.n == 0) {  // one side has no class present: its sums are 0
        r.max = fmax(x.max, y.max); r.rest = x.rest + y.rest; r.a = x.a + y.a; r.b = x.b + y.b;
        return r;
    }
    r.max = fmax(x.max, y.max);
    if (x.max > y.max) r.rest = x.rest + (1.0 + y.rest) * exp(y.max - r.max);
    else if (y.max > x.max) r.rest = y.rest + (1.0 + x.rest) * exp(x.max - r.max);
    else r.rest = x.rest + y.rest + 1.0;
    double sx = r.max - x.max, sy = r.max - y.max;
    r.a = (x.a + (x.ysum > 0.0 ? x.ysum * sx : 0.0)) + (y.a + (y.ysum > 0.0 ? y.ysum * sy : 0.0));
    r.b = (x.b + (double)x.n * sx) + (y.b + (double)y.n * sy);
    return r;
}

__device__ __forceinline__ CeStats shfl_xor(CeStats c, int off) {
    c.max = shfl_d(c.max, off); c.rest = shfl_d(c.rest, off); c.ysum = shfl_d(c.ysum, off);
    c.a = shfl_d(c.a, off); c.b = shfl_d(c.b, off); c.n = shfl_l(c.n, off);
    c.bad = shfl_i(c.bad, off); c.unsupported = shfl_i(c.unsupported, off); c.invalid = shfl_i(c.invalid, off);
    return c;
}

__device__ __forceinline__ void store_ce(double* p, const CeStats& c) {
    p[0] = c.max; p[1] = c.rest; p[2] = c.ysum; p[3] = c.a; p[4] = c.b; p[5] = (double)c.n;
    p[6] = c.bad; p[7] = c.unsupported; p[8] = c.invalid;
}
__device__ __forceinline__ CeStats load_ce(const double* p) {
    CeStats c;
    c.max = p[0]; c.rest = p[1]; c.ysum = p[2]; c.a = p[3]; c.b = p[4]; c.n = (i64)p[5];
    c.bad = (int)p[6]; c.unsupported = (int)p[7]; c.invalid = (int)p[8];
    return c;
}

// Softmax CE of rows s against class indices `labels` (one per row, ignore_index ignored) or
// probabilities `probs` (U per class, row stride); eps = label smoothing; class mask `mask`, row
// mask `row_mask` (null: none); gradient g (C-contiguous, or null) scaled by grad_scale.
template <class T, class U>
__global__ void softmax_ce(const T* s, i64 s_stride, const i64* labels, i64 ignore_index, const U* probs, i64 p_stride,
                           const u8* mask, i64 mask_stride, const u8* row_mask, i64 rows, i64 cols, double inv_tau,
                           double eps, double grad_scale, T* g, typename ValueOf<T>::type* values, double* row_values,
                           u8* row_status, int phase, int warp_rows, int chunks, i64 chunk_len, double* partial) {
    const Tile tl = make_tile(rows, cols, warp_rows, chunks, chunk_len);
    if (!tl.active) return;
    const T* sr = s + tl.row * s_stride;
    const u8* mr = mask ? mask + tl.row * mask_stride : (const u8*)0;
    const U* pr = probs ? probs + tl.row * p_stride : (const U*)0;
    const i64 label = labels ? labels[tl.row] : 0;
    const bool skip = (row_mask && !row_mask[tl.row]) || (labels && label == ignore_index);
    if (skipped_row(skip, tl, phase, values, row_values, row_status, g, cols)) return;
    const bool label_ok = !labels || (label >= 0 && label < cols);

    CeStats st;
    const auto sweep = [&] {
        CeStats mine = ce_empty();
        for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
            double y = 0.0;
            if (pr) {
                y = to_f64(pr[i]);
                if (!(y >= 0.0 && ld_isfinite(y))) { mine.invalid = 1; y = 0.0; }
            }
            double raw = to_f64(sr[i]);
            double x = raw * inv_tau;
            if (mr && !mr[i]) { if (y > 0.0) mine.unsupported = 1; continue; }
            if (out_of_domain(raw, x)) { mine.bad = 1; continue; }
            if (x == -ld_inf()) { if (y > 0.0) mine.unsupported = 1; continue; }
            ce_push(mine, x, y);
        }
        return mine;
    };
    if (!row_pass(st, 1, phase, tl, partial, chunks, sweep, store_ce, load_ce)) return;
    if (!label_ok) st.invalid = 1;
    if (labels && label_ok) {
        double x = to_f64(sr[label]) * inv_tau;
        if ((mr && !mr[label]) || x == -ld_inf()) {
            st.unsupported = 1;
        } else {
            st.ysum = 1.0;
            st.a = st.max - x;
        }
    }
    if (st.bad || st.invalid) {
        write_row(tl, values, row_values, row_status, ld_nan(), true, st.invalid != 0);
        fill_tile(tl, g, cols, ld_nan());
        return;
    }
    if (st.n == 0) {
        write_row(tl, values, row_values, row_status, 0.0, false, false);
        fill_tile(tl, g, cols, 0.0);
        return;
    }
    double value;
    if (st.unsupported) {
        value = ld_inf();
    } else {
        double l = log1p(st.rest);
        value = 0.0;
        if (eps < 1.0) value += (1.0 - eps) * (st.a + st.ysum * l);
        if (eps > 0.0) value += eps * (st.b / (double)st.n + l);
    }
    write_row(tl, values, row_values, row_status, value, true, false);
    if (!g) return;
    if (!ld_isfinite(value)) {
        fill_tile(tl, g, cols, ld_nan());
        return;
    }
    // Σt·p_i − t_i, t = (1−ε)·y + ε/n; for the largest logit with p > ½ as (Σt − t) − Σt·(1 − p)
    const double n = (double)st.n;
    const double tsum = (1.0 - eps) * st.ysum + eps;
    const double spread = eps > 0.0 ? eps / n : 0.0;
    const double top_rest = st.rest / (1.0 + st.rest);
    for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
        double x = to_f64(sr[i]) * inv_tau;
        double d = 0.0;
        if (!((mr && !mr[i]) || x == -ld_inf())) {
            double y = labels ? (i == label ? 1.0 : 0.0) : to_f64(pr[i]);
            double tt = (1.0 - eps) * y + spread;
            if (x == st.max && st.rest < 1.0) d = ((1.0 - eps) * (st.ysum - y) + (eps - spread)) - tsum * top_rest;
            else d = tsum * (exp(x - st.max) / (1.0 + st.rest)) - tt;
        }
        g[tl.row * cols + i] = from_f64<T>(grad_scale * d);
    }
}

// ---------------------------------------------------------------------------------------------
// binary cross-entropy (bce.rs): Σ_i w_i [pw_i y_i softplus(−x_i) + (1 − y_i) softplus(x_i)]

template <class T, class U>
__global__ void bce(const T* s, i64 s_stride, const U* target, i64 y_stride, const double* pos_weight, i64 pw_stride,
                    const double* weights, i64 w_stride, const u8* mask, i64 mask_stride, const u8* row_mask,
                    i64 rows, i64 cols, double grad_scale, T* g, typename ValueOf<T>::type* values,
                    double* row_values, u8* row_status, int phase, int warp_rows, int chunks, i64 chunk_len,
                    double* partial) {
    const Tile tl = make_tile(rows, cols, warp_rows, chunks, chunk_len);
    if (!tl.active) return;
    if (skipped_row(row_mask && !row_mask[tl.row], tl, phase, values, row_values, row_status, g, cols)) return;
    const T* sr = s + tl.row * s_stride;
    const U* yr = target + tl.row * y_stride;
    const double* pwr = pos_weight ? pos_weight + tl.row * pw_stride : (const double*)0;
    const double* wr = weights ? weights + tl.row * w_stride : (const double*)0;
    const u8* mr = mask ? mask + tl.row * mask_stride : (const u8*)0;
    ElemStats e = elem_empty();
    if (phase <= 1) {
        for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
            double y = to_f64(yr[i]);
            double weight = wr ? wr[i] : 1.0, pw = pwr ? pwr[i] : 1.0;
            if (!(y >= 0.0 && y <= 1.0) || !(weight >= 0.0 && ld_isfinite(weight)) || !(pw >= 0.0 && ld_isfinite(pw))) {
                e.invalid = 1;
            }
            double x = to_f64(sr[i]);
            double pos = pw * y;
            double d = 0.0;
            if ((mr && !mr[i]) || weight == 0.0) {
            } else if (out_of_domain(x, x)) {
                e.bad = 1;
            } else if (x == -ld_inf()) {
                if (pos > 0.0) e.value += ld_inf();  // an absent class the target puts mass on
            } else {
                e.n += 1;
                e.value += weight * (times(pos, softplus(-x)) + times(1.0 - y, softplus(x)));
                d = weight * (times(1.0 - y, sigmoid(x)) - times(pos, sigmoid(-x)));
            }
            if (g) g[tl.row * cols + i] = from_f64<T>(grad_scale * d);
        }
        if (phase == 1) {
            e = group_reduce(e, tl.block_mode);
            if (tl.tid == 0) store_elem(chunk_slot(partial, tl, chunks), e);
            return;
        }
    }
    e = elem_finish_state(tl, e, phase, chunks, partial);
    if (e.invalid) e.bad = 1;
    elem_write(tl, e, g, (T*)0, cols, values, row_values, row_status);
}

// ---------------------------------------------------------------------------------------------
// multilabel softmax cross-entropy (multilabel.rs, online.rs Log1pSumExp):
// log(1 + Σ (1−y_i) e^{x_i}) + log(1 + Σ y_i e^{−x_i})

// log(1 + Σ w e^{x}) kept as (max, Σ w e^{x − max}).
struct L1pse { double max, sum; };

__device__ __forceinline__ void l1pse_push(L1pse& l, double x, double w) {
    if (x > l.max) {
        l.sum = l.sum == 0.0 ? w : l.sum * exp(l.max - x) + w;
        l.max = x;
    } else {
        l.sum += w * exp(x - l.max);
    }
}

__device__ __forceinline__ L1pse merge(L1pse a, L1pse b) {
    L1pse r;
    r.max = fmax(a.max, b.max);
    if (a.max == -ld_inf() || b.max == -ld_inf()) { r.sum = a.sum + b.sum; return r; }
    r.sum = a.sum * exp(a.max - r.max) + b.sum * exp(b.max - r.max);
    return r;
}

__device__ __forceinline__ double l1pse_value(const L1pse& l) {
    if (l.sum == 0.0) return 0.0;
    if (l.max < 700.0) return log1p(l.sum * exp(l.max));
    return softplus(l.max + log(l.sum));
}

struct MlStats { L1pse neg, pos; i64 n; int bad, unsupported, invalid; };

__device__ __forceinline__ MlStats merge(MlStats x, MlStats y) {
    MlStats r;
    r.neg = merge(x.neg, y.neg); r.pos = merge(x.pos, y.pos); r.n = x.n + y.n;
    r.bad = x.bad | y.bad; r.unsupported = x.unsupported | y.unsupported; r.invalid = x.invalid | y.invalid;
    return r;
}
__device__ __forceinline__ MlStats shfl_xor(MlStats m, int off) {
    m.neg.max = shfl_d(m.neg.max, off); m.neg.sum = shfl_d(m.neg.sum, off);
    m.pos.max = shfl_d(m.pos.max, off); m.pos.sum = shfl_d(m.pos.sum, off);
    m.n = shfl_l(m.n, off); m.bad = shfl_i(m.bad, off); m.unsupported = shfl_i(m.unsupported, off);
    m.invalid = shfl_i(m.invalid, off);
    return m;
}
__device__ __forceinline__ void store_ml(double* p, const MlStats& m) {
    p[0] = m.neg.max; p[1] = m.neg.sum; p[2] = m.pos.max; p[3] = m.pos.sum; p[4] = (double)m.n;
    p[5] = m.bad; p[6] = m.unsupported; p[7] = m.invalid;
}
__device__ __forceinline__ MlStats load_ml(const double* p) {
    MlStats m;
    m.neg.max = p[0]; m.neg.sum = p[1]; m.pos.max = p[2]; m.pos.sum = p[3]; m.n = (i64)p[4];
    m.bad = (int)p[5]; m.unsupported = (int)p[6]; m.invalid = (int)p[7];
    return m;
}

template <class T, class U>
__global__ void multilabel_ce(const T* s, i64 s_stride, const U* target, i64 y_stride, const u8* mask, i64 mask_stride,
                              const u8* row_mask, i64 rows, i64 cols, double grad_scale, T* g,
                              typename ValueOf<T>::type* values, double* row_values, u8* row_status, int phase,
                              int warp_rows, int chunks, i64 chunk_len, double* partial) {
    const Tile tl = make_tile(rows, cols, warp_rows, chunks, chunk_len);
    if (!tl.active) return;
    if (skipped_row(row_mask && !row_mask[tl.row], tl, phase, values, row_values, row_status, g, cols)) return;
    const T* sr = s + tl.row * s_stride;
    const U* yr = target + tl.row * y_stride;
    const u8* mr = mask ? mask + tl.row * mask_stride : (const u8*)0;
    MlStats m;
    const auto sweep = [&] {
        MlStats mine;
        mine.neg.max = -ld_inf(); mine.neg.sum = 0.0; mine.pos = mine.neg; mine.n = 0; mine.bad = 0; mine.unsupported = 0;
        mine.invalid = 0;
        for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
            double y = to_f64(yr[i]);
            if (!(y >= 0.0 && y <= 1.0)) { mine.invalid = 1; continue; }
            double x = to_f64(sr[i]);
            if (mr && !mr[i]) { if (y > 0.0) mine.unsupported = 1; continue; }
            if (out_of_domain(x, x)) { mine.bad = 1; continue; }
            if (x == -ld_inf()) { if (y > 0.0) mine.unsupported = 1; continue; }
            mine.n += 1;
            if (y < 1.0) l1pse_push(mine.neg, x, 1.0 - y);
            if (y > 0.0) l1pse_push(mine.pos, -x, y);
        }
        return mine;
    };
    if (!row_pass(m, 1, phase, tl, partial, chunks, sweep, store_ml, load_ml)) return;
    if (m.bad || m.invalid || m.unsupported) {
        double value = (m.bad || m.invalid) ? ld_nan() : ld_inf();
        write_row(tl, values, row_values, row_status, value, true, m.invalid != 0);
        fill_tile(tl, g, cols, ld_nan());
        return;
    }
    const double log_zneg = l1pse_value(m.neg), log_zpos = l1pse_value(m.pos);
    write_row(tl, values, row_values, row_status, log_zneg + log_zpos, m.n > 0, false);
    if (!g) return;
    for (i64 i = tl.lo + tl.tid; i < tl.hi; i += tl.nthreads) {
        double x = to_f64(sr[i]);
        double d = 0.0;
        if (!((mr && !mr[i]) || x == -ld_inf())) {
            double y = to_f64(yr[i]);
            if (y < 1.0) d += (1.0 - y) * exp(x - log_zneg);
            if (y > 0.0) d -= y * exp(-x - log_zpos);
        }
        g[tl.row * cols + i] = from_f64<T>(grad_scale * d);
    }
}
