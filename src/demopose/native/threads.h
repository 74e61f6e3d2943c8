/*
 * Row-parallel loops for the kernels of demopose.native (included by each kernel's .c file).
 *
 * parallel_rows(fn, args, total, threads) runs fn(args, part, begin, end) over [0, total) split into at most
 * `threads` contiguous parts (part = 0 .. parts - 1, for per-part scratch memory): the caller's thread runs
 * part 0, one POSIX thread per other part, joined before it returns. A part whose thread cannot be started
 * runs on the caller's thread. (A persistent pool was measured not to be faster for the few calls of a
 * network forward: demopose issue #9 notes.)
 */
#ifndef DEMOPOSE_THREADS_H
#define DEMOPOSE_THREADS_H

#include <pthread.h>
#include <stdint.h>

#define MAX_THREADS 256

typedef void (*range_fn)(const void *args, int part, int64_t begin, int64_t end);

typedef struct {
    range_fn fn;
    const void *args;
    int part;
    int64_t begin, end;
} RowTask;

static void *run_row_task(void *p) {
    const RowTask *t = (const RowTask *)p;
    t->fn(t->args, t->part, t->begin, t->end);
    return 0;
}

static void parallel_rows(range_fn fn, const void *args, int64_t total, int threads) {
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > total) threads = total > 0 ? (int)total : 1;
    RowTask tasks[MAX_THREADS];
    pthread_t handles[MAX_THREADS];
    int started[MAX_THREADS];
    for (int t = 0; t < threads; ++t) {
        RowTask task = {fn, args, t, total * t / threads, total * (t + 1) / threads};
        tasks[t] = task;
        started[t] = 0;
    }
    for (int t = 1; t < threads; ++t) started[t] = pthread_create(&handles[t], 0, run_row_task, &tasks[t]) == 0;
    run_row_task(&tasks[0]);
    for (int t = 1; t < threads; ++t) {
        if (started[t])
            pthread_join(handles[t], 0);
        else
            run_row_task(&tasks[t]);
    }
}

#endif
