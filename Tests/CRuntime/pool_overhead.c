/* The cost of one near-empty parallel region on `threads` threads (the pool's fast spin path):
 * prints the median over `reps` repetitions of the mean time per lr_pool_run call.
 * Build: clang -O2 -pthread -ISources/CRuntime/include Sources/CRuntime/lr_pool.c Tests/CRuntime/pool_overhead.c */
#include "lr_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void touch(void *ctx, long i) { ((volatile long *)ctx)[i] += 1; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long calls = argc > 2 ? atol(argv[2]) : 200000;
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    long slots[64] = {0};
    double t[64];
    if (reps > 64) reps = 64;
    lr_pool_run(threads, threads, touch, slots);  /* start the workers */
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (long c = 0; c < calls; c++) lr_pool_run(threads, threads, touch, slots);
        t[r] = (now() - t0) / calls * 1e9;
    }
    qsort(t, reps, sizeof t[0], cmp);
    printf("threads %d: %.0f ns per region (median of %d x %ld; min %.0f, max %.0f)\n",
           threads, t[reps / 2], reps, calls, t[0], t[reps - 1]);
    return 0;
}
