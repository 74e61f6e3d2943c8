/*
 * PointNet++ sampling and grouping indices on CPU (used by demopose.native.pointnet2 / demopose.layers.pointnet2).
 *
 * Qi, Yi, Su, Guibas, "PointNet++", NeurIPS 2017; the semantics of the CUDA operators AG-Pose / CleanPose build on
 * (notes/cleanpose.md §1.4), as demopose.layers.pointnet2 documents them:
 *
 *   farthest point sampling: start at `start`; each next pick maximises the squared distance to the picks so far
 *       (the first such point on ties); distances (x - x_j)^2 + (y - y_j)^2 + (z - z_j)^2 summed in that order;
 *   ball query: per centre the first `nsample` points in index order with squared distance strictly below r^2,
 *       empty slots repeating the first one found (0 when the ball is empty).
 *
 * The torch code computes the same indices through (B, N) / (B, M, N) tensors, one Python-level step per pick;
 * here each batch item (FPS) or block of centres (ball query) is one loop on one thread (threads.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "threads.h"

typedef struct {
    const float *points; /* (B, N, 3) */
    const float *centres; /* ball query: (B, M, 3) */
    int64_t *out;         /* FPS: (B, k); ball query: (B, M, nsample) */
    int64_t N, M, k, start, nsample;
    float radius2;
    int failed;
} Job;

static inline float sq_dist(const float *a, const float *b) {
    const float dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
    return dx * dx + dy * dy + dz * dz;
}

static void fps_part(const void *args, int part, int64_t first, int64_t last) {
    Job *job = (Job *)args;
    const int64_t N = job->N, k = job->k;
    float *dist = (float *)malloc(sizeof(float) * (size_t)N);
    (void)part;
    if (!dist) {
        job->failed = 1;
        return;
    }
    for (int64_t b = first; b < last; ++b) {
        const float *p = job->points + b * N * 3;
        int64_t *out = job->out + b * k;
        int64_t j = job->start;
        out[0] = j;
        for (int64_t n = 0; n < N; ++n) dist[n] = sq_dist(p + 3 * n, p + 3 * j);
        for (int64_t i = 1; i < k; ++i) {
            int64_t best = 0;
            float best_d = dist[0];
            for (int64_t n = 1; n < N; ++n)
                if (dist[n] > best_d) {
                    best_d = dist[n];
                    best = n;
                }
            j = best;
            out[i] = j;
            const float *q = p + 3 * j;
            for (int64_t n = 0; n < N; ++n) {
                const float d = sq_dist(p + 3 * n, q);
                dist[n] = d < dist[n] ? d : dist[n];
            }
        }
    }
    free(dist);
}

static void ball_part(const void *args, int part, int64_t first, int64_t last) {
    const Job *job = (const Job *)args;
    const int64_t N = job->N, M = job->M, S = job->nsample;
    (void)part;
    for (int64_t row = first; row < last; ++row) { /* row = b * M + m */
        const int64_t b = row / M;
        const float *p = job->points + b * N * 3, *c = job->centres + row * 3;
        int64_t *out = job->out + row * S;
        int64_t found = 0;
        for (int64_t n = 0; n < N && found < S; ++n)
            if (sq_dist(c, p + 3 * n) < job->radius2) out[found++] = n;
        const int64_t fill = found ? out[0] : 0;
        for (int64_t s = found; s < S; ++s) out[s] = fill;
    }
}

/* Returns 0, or 1 when scratch memory could not be allocated. */
int fps_f32(const float *points, int64_t B, int64_t N, int64_t k, int64_t start, int64_t *out, int threads) {
    Job job = {points, 0, out, N, 0, k, start, 0, 0.f, 0};
    parallel_rows(fps_part, &job, B, threads);
    return job.failed;
}

int ball_query_f32(const float *points, const float *centres, int64_t B, int64_t N, int64_t M, float radius2,
                   int64_t nsample, int64_t *out, int threads) {
    Job job = {points, centres, out, N, M, 0, 0, nsample, radius2, 0};
    parallel_rows(ball_part, &job, B * M, threads);
    return 0;
}
