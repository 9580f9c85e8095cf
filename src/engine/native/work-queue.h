// A FIFO of jobs run by a fixed set of threads. The engine uses one for READ replies from
// an fd (pread + writev; file data never enters JS) and one single-threaded queue for
// kernel notifications, whose writes may wait for inode locks and must not hold up reads.
#ifndef LAYERFS_WORK_QUEUE_H
#define LAYERFS_WORK_QUEUE_H

#include <pthread.h>

typedef struct lf_job {
  struct lf_job *next;
  // Runs on a queue thread; must free the job (it is the job's owner once queued).
  void (*run)(struct lf_job *job, void *thread_scratch);
} lf_job;

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t ready;
  lf_job *head, *tail;
  int stopping;
  int nthreads;
  pthread_t *threads;
  size_t scratch_size;   // bytes of per-thread scratch memory handed to every job (0: none)
} lf_work_queue;

// Starts `nthreads` threads; 0 on success or a positive errno.
int lf_queue_start(lf_work_queue *q, int nthreads, size_t scratch_size);
// Appends a job; runs it in the caller (never drops it) if the queue is stopping.
void lf_queue_push(lf_work_queue *q, lf_job *job);
// Runs every queued job, then joins the threads. Idempotent.
void lf_queue_stop(lf_work_queue *q);

#endif
