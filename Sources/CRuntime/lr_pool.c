#include "lr_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#define LR_MAX_WORKERS 63
#define LR_SPIN_ROUNDS 200000  /* ~1 ms of pause instructions before sleeping */

/* Publication of a job. The caller writes the job fields with plain stores (holding `lock`), then
 * publishes them with a release store of `unclaimed` = n. A thread claims index n - left by an
 * acquire fetch-sub on `unclaimed` that returns left > 0: that read-modify-write continues the
 * release sequence of the caller's store, so the claimer sees the job's fields, and it reads them
 * only after a successful claim. The caller changes the fields again only after `remaining` (the
 * unfinished indices, decremented with release after each call) reaches 0, i.e. after every
 * claimer of this job has finished reading them. A worker that arrives after the job is done gets
 * left <= 0 (a harmless decrement the next job's store overwrites), or, if the next job has been
 * published meanwhile, a valid index of that job. `generation` only wakes the workers. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;     /* serializes jobs and pool growth */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int workers = 0;

static lr_task_fn job_fn;               /* read only after a successful claim */
static void *job_ctx;
static long job_n;
static atomic_int job_helpers;          /* how many workers may join the newest job (a hint) */
static atomic_long unclaimed;           /* indices of the current job not yet handed out */
static atomic_long remaining;           /* indices of the current job not yet finished */
static atomic_long generation;
static atomic_int sleeping;
static _Thread_local bool in_job = false;

/* A spin-wait hint; nothing on other architectures. */
static inline void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void drain(void) {
    long left;
    while ((left = atomic_fetch_sub_explicit(&unclaimed, 1, memory_order_acquire)) > 0) {
        job_fn(job_ctx, job_n - left);
        atomic_fetch_sub_explicit(&remaining, 1, memory_order_release);
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
        if (id < atomic_load_explicit(&job_helpers, memory_order_relaxed)) drain();
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
    job_fn = fn;
    job_ctx = context;
    job_n = n;
    atomic_store_explicit(&job_helpers, helpers < workers ? helpers : workers, memory_order_relaxed);
    atomic_store_explicit(&remaining, n, memory_order_relaxed);
    atomic_store_explicit(&unclaimed, n, memory_order_release);
    /* seq_cst: pairs with a sleeping worker's increment of `sleeping` before its last check of
     * `generation`, so either the worker sees the new generation or this thread sees it asleep. */
    atomic_fetch_add_explicit(&generation, 1, memory_order_seq_cst);
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

int lr_pool_in_job(void) {
    return in_job;
}
