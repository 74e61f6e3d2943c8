/*
 * Exact k-nearest neighbours of small point sets (C <= 3 coordinates), for demopose.layers.knn.
 *
 * Distances in the difference form d = (q_x - r_x)^2 + (q_y - r_y)^2 + (q_z - r_z)^2, summed in that order with
 * separate float32 multiplies and adds (built with -ffp-contract=off, so no fused multiply-add changes the
 * rounding): the same bits as demopose.layers.knn.squared_distances in PyTorch and in the exported ONNX graph.
 * The k smallest are kept in order, equal distances lower index first (a stable sort, ONNX TopK's tie order);
 * NaN distances rank as +inf. With exclude_self, point i of a set queried against itself is never its own
 * neighbour (a duplicate point at distance 0 still is).
 *
 * Query rows are split into contiguous ranges over `threads` POSIX threads (the caller's thread runs the first).
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#define MAX_K 64 /* neighbours per query at most (the caller checks) */

typedef struct {
    const float *query;  /* (B, M, C) */
    const float *ref_t;  /* (B, C, N): the reference set, one row per coordinate */
    int64_t *out;        /* (B, M, k) */
    float *scratch;      /* N distances of this job */
    int64_t begin, end;  /* flat query rows b * M + i of this job */
    int64_t M, N, C, k;
    int exclude_self;
} Job;

static void run_rows(const Job *job) {
    const int64_t M = job->M, N = job->N, C = job->C, k = job->k;
    float *restrict d = job->scratch;
    float bd[MAX_K];
    int64_t bi[MAX_K];
    for (int64_t row = job->begin; row < job->end; ++row) {
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
        if (job->exclude_self) d[i] = INFINITY;
        int64_t count = 0;
        for (int64_t j = 0; j < N; ++j) {
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

static void *run_thread(void *arg) {
    run_rows((const Job *)arg);
    return 0;
}

#define MAX_THREADS 256

/* scratch: threads * N floats. Returns 0, or -1 if a thread could not be started (its rows then run here). */
int knn_max_k(void) { return MAX_K; }

int knn_exact(const float *query, const float *ref_t, int64_t B, int64_t M, int64_t N, int64_t C, int64_t k,
              int exclude_self, int64_t *out, float *scratch, int threads) {
    const int64_t rows = B * M;
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > rows) threads = rows > 0 ? (int)rows : 1;
    Job jobs[MAX_THREADS];
    pthread_t handles[MAX_THREADS];
    int started[MAX_THREADS];
    int status = 0;
    for (int t = 0; t < threads; ++t) {
        Job job = {query, ref_t, out, scratch + (int64_t)t * N, rows * t / threads, rows * (t + 1) / threads,
                   M, N, C, k, exclude_self};
        jobs[t] = job;
        started[t] = 0;
    }
    for (int t = 1; t < threads; ++t)
        started[t] = pthread_create(&handles[t], 0, run_thread, &jobs[t]) == 0;
    run_rows(&jobs[0]);
    for (int t = 1; t < threads; ++t) {
        if (started[t]) {
            pthread_join(handles[t], 0);
        } else {
            run_rows(&jobs[t]);
            status = -1;
        }
    }
    return status;
}
