/*
 * The 3D-GC neighbour aggregation with its gradient, for training on CPU (used by demopose.native.gcn3d_grad).
 *
 * 3D-GC: Lin, Huang, Wang, "Convolution in the Cloud", CVPR 2020; in the form of GPV-Pose
 * (lolrudy/GPV_Pose, network/fs_net_repo/gcn3d.py). For row i with k unit neighbour directions u_ij, the
 * normalised support directions d (3 x M, M = S * C) and, for the graph convolution, the per-support features
 * g (P x M) of every point:
 *
 *     a_im  = max_j ReLU(u_ij . d_m) * g[idx_ij, m]        (no g: the surface convolution)
 *     out_ic = scale * sum_s a_i(sC + c)
 *
 * Forward writes out and the maximising neighbour j* of every (i, m) (one byte each, k <= 255). Backward uses
 * only j*, as autograd's max does (a tie between neighbours sends the whole gradient to the first of them, where
 * PyTorch's amax would split it: ties have zero measure except where every product is 0, whose gradient is 0):
 *
 *     t = u_ij* . d_m,  active where t > 0;   ga = scale * dout_i(m mod C)
 *     dg[idx_ij*, m] += ga * t      dd[:, m] += u_ij* * ga * g      du_ij* += d[:, m] * ga * g
 *
 * The rows are processed by instance: row i belongs to instance i / rows_per_instance, and a graph convolution's
 * neighbours lie in their row's instance (demopose.layers.gcn3d builds the index so). Threads take whole
 * instances, so no two threads write the same row of dg; each thread sums dd into its own (3, M) slice.
 *
 * Every function exists for float and double (the double one serves torch.autograd.gradcheck); the loops over m
 * are plain C for the compiler to vectorise (-O3 -march=native).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "threads.h"

#define DEFINE_KERNELS(T, SUFFIX)                                                                                  \
    typedef struct {                                                                                               \
        const T *dirs;       /* (R, k, 3) */                                                                       \
        const T *d;          /* (3, M) */                                                                          \
        const T *g;          /* (P, M) or NULL */                                                                  \
        const int64_t *idx;  /* (R, k) rows of g, or NULL */                                                       \
        const T *dout;       /* backward: (R, C) */                                                                \
        T *out;              /* forward: (R, C) */                                                                 \
        uint8_t *arg;        /* (R, M) maximising neighbour */                                                     \
        T *du;               /* backward: (R, k, 3), zeroed */                                                     \
        T *dd;               /* backward: (parts, 3, M), zeroed */                                                 \
        T *dg;               /* backward: (P, M) zeroed, or NULL */                                                \
        int64_t k, S, C, rows_per_instance;                                                                        \
        T scale;                                                                                                   \
        int failed;                                                                                                \
    } Job##SUFFIX;                                                                                                 \
                                                                                                                   \
    static void forward_part##SUFFIX(const void *args, int part, int64_t first, int64_t last) {                    \
        Job##SUFFIX *job = (Job##SUFFIX *)args;                                                                    \
        const int64_t k = job->k, S = job->S, C = job->C, M = S * C;                                               \
        const T *d0 = job->d, *d1 = job->d + M, *d2 = job->d + 2 * M;                                              \
        T *best = (T *)malloc(sizeof(T) * (size_t)M * 2); /* running maxima, then their neighbour (as T) */     \
        (void)part;                                                                                                \
        if (!best) {                                                                                               \
            job->failed = 1;                                                                                       \
            return;                                                                                                \
        }                                                                                                          \
        T *best_j = best + M;                                                                                      \
        for (int64_t i = first * job->rows_per_instance; i < last * job->rows_per_instance; ++i) {                 \
            const T *u = job->dirs + i * k * 3;                                                                    \
            for (int64_t j = 0; j < k; ++j) {                                                                      \
                const T u0 = u[3 * j], u1 = u[3 * j + 1], u2 = u[3 * j + 2], jj = (T)j;                            \
                const T *g = job->g ? job->g + job->idx[i * k + j] * M : 0;                                        \
                if (j == 0 && g) {                                                                                 \
                    for (int64_t m = 0; m < M; ++m) {                                                              \
                        const T t = u0 * d0[m] + u1 * d1[m] + u2 * d2[m];                                          \
                        best[m] = (t > 0 ? t : 0) * g[m];                                                          \
                        best_j[m] = 0;                                                                             \
                    }                                                                                              \
                } else if (j == 0) {                                                                               \
                    for (int64_t m = 0; m < M; ++m) {                                                              \
                        const T t = u0 * d0[m] + u1 * d1[m] + u2 * d2[m];                                          \
                        best[m] = t > 0 ? t : 0;                                                                   \
                        best_j[m] = 0;                                                                             \
                    }                                                                                              \
                } else if (g) {                                                                                    \
                    for (int64_t m = 0; m < M; ++m) {                                                              \
                        T t = u0 * d0[m] + u1 * d1[m] + u2 * d2[m];                                                \
                        t = (t > 0 ? t : 0) * g[m];                                                                \
                        const int take = t > best[m];                                                              \
                        best[m] = take ? t : best[m];                                                              \
                        best_j[m] = take ? jj : best_j[m];                                                         \
                    }                                                                                              \
                } else {                                                                                           \
                    for (int64_t m = 0; m < M; ++m) {                                                              \
                        T t = u0 * d0[m] + u1 * d1[m] + u2 * d2[m];                                                \
                        t = t > 0 ? t : 0;                                                                         \
                        const int take = t > best[m];                                                              \
                        best[m] = take ? t : best[m];                                                              \
                        best_j[m] = take ? jj : best_j[m];                                                         \
                    }                                                                                              \
                }                                                                                                  \
            }                                                                                                      \
            uint8_t *arg = job->arg + i * M;                                                                       \
            for (int64_t m = 0; m < M; ++m) arg[m] = (uint8_t)best_j[m];                                           \
            T *out = job->out + i * C;                                                                             \
            for (int64_t c = 0; c < C; ++c) out[c] = best[c];                                                      \
            for (int64_t s = 1; s < S; ++s)                                                                        \
                for (int64_t c = 0; c < C; ++c) out[c] += best[s * C + c];                                         \
            if (job->scale != 1)                                                                                   \
                for (int64_t c = 0; c < C; ++c) out[c] *= job->scale;                                              \
        }                                                                                                          \
        free(best);                                                                                                \
    }                                                                                                              \
                                                                                                                   \
    static void backward_part##SUFFIX(const void *args, int part, int64_t first, int64_t last) {                   \
        const Job##SUFFIX *job = (const Job##SUFFIX *)args;                                                        \
        const int64_t k = job->k, S = job->S, C = job->C, M = S * C;                                               \
        const T *d0 = job->d, *d1 = job->d + M, *d2 = job->d + 2 * M;                                              \
        T *dd0 = job->dd + (int64_t)part * 3 * M, *dd1 = dd0 + M, *dd2 = dd0 + 2 * M;                              \
        for (int64_t i = first * job->rows_per_instance; i < last * job->rows_per_instance; ++i) {                 \
            const T *u = job->dirs + i * k * 3;                                                                    \
            const T *dout = job->dout + i * C;                                                                     \
            const uint8_t *arg = job->arg + i * M;                                                                 \
            T *du = job->du + i * k * 3;                                                                           \
            for (int64_t s = 0; s < S; ++s) {                                                                      \
                for (int64_t c = 0; c < C; ++c) {                                                                  \
                    const int64_t m = s * C + c, j = arg[m];                                                       \
                    const T ga = job->scale * dout[c];                                                             \
                    const T u0 = u[3 * j], u1 = u[3 * j + 1], u2 = u[3 * j + 2];                                   \
                    const T t = u0 * d0[m] + u1 * d1[m] + u2 * d2[m];                                              \
                    if (!(t > 0) || ga == 0) continue;                                                             \
                    T gt = ga;                                                                                     \
                    if (job->g) {                                                                                  \
                        const int64_t row = job->idx[i * k + j];                                                   \
                        gt = ga * job->g[row * M + m];                                                             \
                        job->dg[row * M + m] += ga * t;                                                            \
                    }                                                                                              \
                    dd0[m] += u0 * gt;                                                                             \
                    dd1[m] += u1 * gt;                                                                             \
                    dd2[m] += u2 * gt;                                                                             \
                    du[3 * j] += d0[m] * gt;                                                                       \
                    du[3 * j + 1] += d1[m] * gt;                                                                   \
                    du[3 * j + 2] += d2[m] * gt;                                                                   \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
    }                                                                                                              \
                                                                                                                   \
    /* Returns 0, or 1 when scratch memory could not be allocated. */                                              \
    int gcn3d_forward_##SUFFIX(const T *dirs, const T *d, const T *g, const int64_t *idx, T *out, uint8_t *arg,    \
                               int64_t instances, int64_t rows_per_instance, int64_t k, int64_t S, int64_t C,     \
                               T scale, int threads) {                                                            \
        Job##SUFFIX job = {dirs, d, g, idx, 0, out, arg, 0, 0, 0, k, S, C, rows_per_instance, scale, 0};           \
        parallel_rows(forward_part##SUFFIX, &job, instances, threads);                                             \
        return job.failed;                                                                                         \
    }                                                                                                              \
                                                                                                                   \
    /* dd must hold one (3, M) slice per thread part: min(threads, instances) of them (parts_for). */              \
    int gcn3d_backward_##SUFFIX(const T *dirs, const T *d, const T *g, const int64_t *idx, const T *dout,         \
                                const uint8_t *arg, T *du, T *dd, T *dg, int64_t instances,                       \
                                int64_t rows_per_instance, int64_t k, int64_t S, int64_t C, T scale,              \
                                int threads) {                                                                    \
        Job##SUFFIX job = {dirs, d, g, idx, dout, 0, (uint8_t *)arg, du, dd, dg, k, S, C, rows_per_instance,       \
                           scale, 0};                                                                              \
        parallel_rows(backward_part##SUFFIX, &job, instances, threads);                                            \
        return 0;                                                                                                  \
    }

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)

/* The number of parts parallel_rows splits `total` items into with `threads` threads. */
int gcn3d_parts(int64_t total, int threads) {
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > total) threads = total > 0 ? (int)total : 1;
    return threads;
}
