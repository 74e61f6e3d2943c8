/*
 * Fused 3D-GC neighbour aggregation, for inference on CPU (used by demopose.layers.gcn3d).
 *
 * 3D-GC: Lin, Huang, Wang, "Convolution in the Cloud", CVPR 2020; in the form of GPV-Pose
 * (lolrudy/GPV_Pose, network/fs_net_repo/gcn3d.py). For a point i with k neighbours, unit neighbour
 * directions u_ij (3-vectors), the normalised support directions d (3 x M, M = S * C) and, for the
 * graph convolution, the per-support features g (P x M) of every point:
 *
 *     a_im   = max_j ReLU(u_ij . d_m) * g[idx_ij, m]     graph convolution
 *     a_im   = max_j ReLU(u_ij . d_m)                    surface convolution (g == NULL)
 *     out_ic = center_ic + scale * sum_s a_i(sC + c)     scale = 1 ("sum") or 1 / S ("mean")
 *
 * The torch path computes the same values through (points, k, M) intermediates that it writes to
 * memory and reads back several times (product, gather, multiply, max); here each value lives in a
 * register between its product and its max, so only the gathered rows of g are read.
 *
 * Rows are split into contiguous ranges over `threads` threads (threads.h). Vector intrinsics where the compiler
 * targets AVX-512, AVX2 or NEON (-march=native), else scalar C.
 */
#include <math.h>
#include <stdint.h>

#include "threads.h"

/* One vector of running maxima, kept in a register across the neighbours (AVX-512, AVX2 + FMA, NEON), or
 * a scalar where none of these is compiled in. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define LANES 16
typedef __m512 vec;
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, x) _mm512_storeu_ps(p, x)
#define V_SET(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c) /* a * b + c */
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LANES 8
typedef __m256 vec;
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, x) _mm256_storeu_ps(p, x)
#define V_SET(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define LANES 4
typedef float32x4_t vec;
#define V_LOAD(p) vld1q_f32(p)
#define V_STORE(p, x) vst1q_f32(p, x)
#define V_SET(x) vdupq_n_f32(x)
#define V_FMA(a, b, c) vfmaq_f32(c, a, b)
#define V_MUL(a, b) vmulq_f32(a, b)
#define V_ADD(a, b) vaddq_f32(a, b)
#define V_MAX(a, b) vmaxq_f32(a, b)
#else
#define LANES 1
typedef float vec;
#define V_LOAD(p) (*(p))
#define V_STORE(p, x) (*(p) = (x))
#define V_SET(x) (x)
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_MUL(a, b) ((a) * (b))
#define V_ADD(a, b) ((a) + (b))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

typedef struct {
    const float *dirs;    /* (R, k, 3) */
    const float *d;       /* (3, S * C) */
    const float *g;       /* (P, S * C) or NULL */
    const int64_t *idx;   /* (R, k) rows of g, or NULL */
    const float *center;  /* (R, C) or NULL */
    float *out;           /* (R, C) */
    int64_t k, S, C;
    float scale;
} Job;

/* max_j ReLU(u_j . d_m) [* g_j,m] for the LANES channels m0 .. m0 + LANES - 1 of row i. */
static inline vec max_over_neighbours(const Job *job, int64_t i, int64_t m0) {
    const int64_t k = job->k, M = job->S * job->C;
    const float *u = job->dirs + i * k * 3;
    const vec d0 = V_LOAD(job->d + m0), d1 = V_LOAD(job->d + M + m0), d2 = V_LOAD(job->d + 2 * M + m0);
    const vec zero = V_SET(0.f);
    vec best = V_SET(-INFINITY);
    for (int64_t j = 0; j < k; ++j) {
        vec t = V_FMA(V_SET(u[3 * j + 2]), d2, V_FMA(V_SET(u[3 * j + 1]), d1, V_MUL(V_SET(u[3 * j]), d0)));
        t = V_MAX(t, zero);
        if (job->g) t = V_MUL(t, V_LOAD(job->g + job->idx[i * k + j] * M + m0));
        best = V_MAX(best, t);
    }
    return best;
}

/* The same for one channel (the tail of a channel count that is not a multiple of LANES). */
static inline float max_over_neighbours_1(const Job *job, int64_t i, int64_t m) {
    const int64_t k = job->k, M = job->S * job->C;
    const float *u = job->dirs + i * k * 3;
    float best = -INFINITY;
    for (int64_t j = 0; j < k; ++j) {
        float t = u[3 * j] * job->d[m] + u[3 * j + 1] * job->d[M + m] + u[3 * j + 2] * job->d[2 * M + m];
        t = t > 0.f ? t : 0.f;
        if (job->g) t *= job->g[job->idx[i * k + j] * M + m];
        best = t > best ? t : best;
    }
    return best;
}

static void run_rows(const void *args, int part, int64_t begin, int64_t end) {
    const Job *job = (const Job *)args;
    const int64_t S = job->S, C = job->C;
    const vec scale = V_SET(job->scale);
    (void)part;
    for (int64_t i = begin; i < end; ++i) {
        float *out = job->out + i * C;
        const float *center = job->center ? job->center + i * C : 0;
        int64_t c = 0;
        for (; c + LANES <= C; c += LANES) {
            vec sum = max_over_neighbours(job, i, c);
            for (int64_t s = 1; s < S; ++s) sum = V_ADD(sum, max_over_neighbours(job, i, s * C + c));
            if (job->scale != 1.f) sum = V_MUL(sum, scale);
            if (center) sum = V_ADD(V_LOAD(center + c), sum);
            V_STORE(out + c, sum);
        }
        for (; c < C; ++c) {
            float sum = max_over_neighbours_1(job, i, c);
            for (int64_t s = 1; s < S; ++s) sum += max_over_neighbours_1(job, i, s * C + c);
            if (job->scale != 1.f) sum *= job->scale;
            out[c] = center ? center[c] + sum : sum;
        }
    }
}

/* Returns 0. */
int gcn3d_aggregate(const float *dirs, const float *d, const float *g, const int64_t *idx,
                    const float *center, float *out, int64_t rows, int64_t k, int64_t S, int64_t C,
                    float scale, int threads) {
    const Job job = {dirs, d, g, idx, center, out, k, S, C, scale};
    parallel_rows(run_rows, &job, rows, threads);
    return 0;
}
