/*
 * Exact k-nearest neighbours of small point sets (C <= 3 coordinates), for demopose.layers.knn.
 *
 * Distances in the difference form d = (q_x - r_x)^2 + (q_y - r_y)^2 + (q_z - r_z)^2, summed in that order with
 * separate float32 multiplies and adds (built with -ffp-contract=off, so no fused multiply-add changes the
 * rounding): the same bits as demopose.layers.knn.squared_distances in PyTorch and in the exported ONNX graph.
 * The k smallest are kept in order, equal distances lower index first (a stable sort, ONNX TopK's tie order);
 * Coordinates are assumed finite (NaN distances rank as +inf). With exclude_self, point i of a set queried
 * against itself is never its own neighbour (a duplicate point at distance 0 still is).
 *
 * Query rows are split into contiguous ranges over `threads` threads (threads.h).
 */
#include <math.h>
#include <stdint.h>

#include "threads.h"

#define MAX_K 64 /* neighbours per query at most (the caller checks) */

typedef struct {
    const float *query;  /* (B, M, C) */
    const float *ref_t;  /* (B, C, N): the reference set, one row per coordinate */
    int64_t *out;        /* (B, M, k) */
    float *scratch;      /* (threads, N): a row of distances per part */
    int64_t M, N, C, k;
    int exclude_self;
} Job;

static void run_rows(const void *args, int part, int64_t begin, int64_t end) {
    const Job *job = (const Job *)args;
    const int64_t M = job->M, N = job->N, C = job->C, k = job->k;
    float *restrict d = job->scratch + (int64_t)part * N;
    float bd[MAX_K];
    int64_t bi[MAX_K];
    for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / M, i = row % M;
        const float *q = job->query + row * C;
        const float *r = job->ref_t + b * C * N;
        {
            const float q0 = q[0];
            const float *restrict r0 = r;
            for (int64_t j = 0; j < N; ++j) {
                const float t = q0 - r0[j];
                d[j] = t * t;
            }
        }
        for (int64_t c = 1; c < C; ++c) {
            const float qc = q[c];
            const float *restrict rc = r + c * N;
            for (int64_t j = 0; j < N; ++j) {
                const float t = qc - rc[j];
                d[j] = d[j] + t * t;
            }
        }
        const int64_t self = job->exclude_self ? i : -1;
        int64_t count = 0;
        for (int64_t j = 0; j < N; ++j) {
            if (j == self) continue;
            float v = d[j];
            if (v != v) v = INFINITY; /* NaN */
            if (count == k && !(v < bd[k - 1])) continue;
            int64_t pos = count < k ? count : k - 1; /* slot freed at the end */
            while (pos > 0 && bd[pos - 1] > v) { /* strictly greater: equal distances keep index order */
                bd[pos] = bd[pos - 1];
                bi[pos] = bi[pos - 1];
                --pos;
            }
            bd[pos] = v;
            bi[pos] = j;
            if (count < k) ++count;
        }
        int64_t *o = job->out + row * k;
        for (int64_t s = 0; s < k; ++s) o[s] = bi[s];
    }
}

int knn_max_k(void) { return MAX_K; }

/* scratch: (threads, N) floats; flat query rows b * M + i are split into parts over the threads. Returns 0. */
int knn_exact(const float *query, const float *ref_t, int64_t B, int64_t M, int64_t N, int64_t C, int64_t k,
              int exclude_self, int64_t *out, float *scratch, int threads) {
    const Job job = {query, ref_t, out, scratch, M, N, C, k, exclude_self};
    parallel_rows(run_rows, &job, B * M, threads);
    return 0;
}
