#include "lr_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#define LR_MAX_WORKERS 63
#define LR_SPIN_ROUNDS 200000  /* ~1 ms of pause instructions before sleeping */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;     /* serializes jobs and pool growth */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int workers = 0;

static lr_task_fn job_fn;
static void *job_ctx;
static long job_n;
static int job_helpers;                 /* how many workers may join this job */
static atomic_long next_index;
static atomic_long remaining;
static atomic_long generation;
static atomic_int sleeping;
static _Thread_local bool in_job = false;

static inline void cpu_pause(void) { __builtin_ia32_pause(); }

static void drain(void) {
    long i;
    while ((i = atomic_fetch_add_explicit(&next_index, 1, memory_order_relaxed)) < job_n) {
        job_fn(job_ctx, i);
        atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel);
    }
}

static void *worker_main(void *arg) {
    int id = (int)(long)arg;
    long seen = atomic_load(&generation);
    in_job = true;
    for (;;) {
        long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
            if (++spins < LR_SPIN_ROUNDS) {
                /* Yield now and then: a worker that shares a core with the caller must not starve it. */
                if ((spins & 63) == 0) sched_yield(); else cpu_pause();
                continue;
            }
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleeping, 1);
            while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &sleep_lock);
            atomic_fetch_sub(&sleeping, 1);
            pthread_mutex_unlock(&sleep_lock);
            spins = 0;
        }
        seen = g;
        if (id < job_helpers) drain();
    }
    return 0;
}

void lr_pool_run(long n, int threads, lr_task_fn fn, void *context) {
    if (n <= 0) return;
    if (threads <= 1 || n == 1 || in_job) {
        for (long i = 0; i < n; i++) fn(context, i);
        return;
    }
    pthread_mutex_lock(&lock);
    int helpers = threads - 1 < LR_MAX_WORKERS ? threads - 1 : LR_MAX_WORKERS;
    while (workers < helpers) {
        pthread_t t;
        if (pthread_create(&t, 0, worker_main, (void *)(long)workers) != 0) break;
        pthread_detach(t);
        workers++;
    }
    job_fn = fn; job_ctx = context; job_n = n;
    job_helpers = helpers < workers ? helpers : workers;
    atomic_store(&next_index, 0);
    atomic_store(&remaining, n);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    if (atomic_load(&sleeping) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    in_job = true;
    drain();
    in_job = false;
    while (atomic_load_explicit(&remaining, memory_order_acquire) > 0) cpu_pause();
    pthread_mutex_unlock(&lock);
}
