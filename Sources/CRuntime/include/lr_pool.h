/* A small spin-then-sleep thread pool for the engine's parallel loops.
 * Dispatch's concurrentPerform wakes threads through the kernel on every call; the engine runs
 * hundreds of short parallel loops per training step, so its workers spin briefly between jobs. */
#ifndef LR_POOL_H
#define LR_POOL_H

typedef void (*lr_task_fn)(void *context, long index);

/* Runs fn(context, i) for i in [0, n) on the caller plus up to threads - 1 pool workers and
 * returns when all are done. A call from inside a running job runs serially. */
void lr_pool_run(long n, int threads, lr_task_fn fn, void *context);

/* Nonzero on a thread that is running a job's index (a pool worker, or a caller inside lr_pool_run). */
int lr_pool_in_job(void);

#endif
