/* Stress test of lr_pool under ThreadSanitizer (tools/test_pool.sh): many parallel regions of
 * varied sizes, thread counts and task functions, back to back, each result checked. Built with
 * -fsanitize=thread, a data race makes TSan report and the process exit non-zero; a wrong or
 * missing index makes the check below fail. */
#include "lr_pool.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_N 96

typedef struct {
    long out[MAX_N];
    long salt;
} square_job;

static void square_task(void *ctx, long i) {
    square_job *j = ctx;
    j->out[i] = i * i + j->salt;
}

typedef struct {
    atomic_long sum;
    atomic_int hits[MAX_N];
} sum_job;

static void sum_task(void *ctx, long i) {
    sum_job *j = ctx;
    atomic_fetch_add_explicit(&j->sum, i + 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&j->hits[i], 1, memory_order_relaxed);
}

typedef struct {
    long out[8][8];
    int threads;
} nested_job;

static void inner_task(void *ctx, long i) {
    long *row = ctx;
    row[i] = 10 * row[i] + i;
}

static void nested_task(void *ctx, long i) {
    nested_job *j = ctx;
    for (int k = 0; k < 8; k++) j->out[i][k] = k;
    lr_pool_run(8, j->threads, inner_task, j->out[i]);   /* runs serially inside a job */
}

static int failures = 0;

static void fail(const char *what, long region, long i) {
    if (failures++ < 10) fprintf(stderr, "pool_tsan: %s wrong in region %ld at %ld\n", what, region, i);
}

int main(int argc, char **argv) {
    long regions = argc > 1 ? atol(argv[1]) : 20000;
    unsigned long rng = 12345;
    for (long r = 0; r < regions; r++) {
        rng = rng * 6364136223846793005UL + 1442695040888963407UL;
        long n = 1 + (long)((rng >> 33) % MAX_N);
        int threads = 1 + (int)((rng >> 20) % 4);
        switch ((rng >> 40) % 3) {
        case 0: {
            square_job j = {.salt = r};
            lr_pool_run(n, threads, square_task, &j);
            for (long i = 0; i < n; i++) if (j.out[i] != i * i + r) fail("square", r, i);
            break;
        }
        case 1: {
            sum_job j;
            atomic_init(&j.sum, 0);
            for (long i = 0; i < MAX_N; i++) atomic_init(&j.hits[i], 0);
            lr_pool_run(n, threads, sum_task, &j);
            if (atomic_load(&j.sum) != n * (n + 1) / 2) fail("sum", r, n);
            for (long i = 0; i < MAX_N; i++) if (atomic_load(&j.hits[i]) != (i < n)) fail("hits", r, i);
            break;
        }
        default: {
            nested_job j = {.threads = threads};
            long m = n % 8 + 1;
            lr_pool_run(m, threads, nested_task, &j);
            for (long i = 0; i < m; i++)
                for (long k = 0; k < 8; k++) if (j.out[i][k] != 10 * k + k) fail("nested", r, i);
            break;
        }
        }
    }
    if (failures) {
        fprintf(stderr, "pool_tsan: %d wrong results\n", failures);
        return 1;
    }
    printf("pool_tsan: %ld regions OK\n", regions);
    return 0;
}
