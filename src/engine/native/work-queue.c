// See work-queue.h.
#include "work-queue.h"

#include <errno.h>
#include <stdlib.h>

static void *worker(void *arg) {
  lf_work_queue *q = arg;
  void *scratch = q->scratch_size ? malloc(q->scratch_size) : NULL;
  pthread_mutex_lock(&q->lock);
  for (;;) {
    while (!q->head && !q->stopping) pthread_cond_wait(&q->ready, &q->lock);
    lf_job *job = q->head;
    if (!job) break;  // stopping and drained
    q->head = job->next;
    if (!q->head) q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    job->run(job, scratch);
    pthread_mutex_lock(&q->lock);
  }
  pthread_mutex_unlock(&q->lock);
  free(scratch);
  return NULL;
}

int lf_queue_start(lf_work_queue *q, int nthreads, size_t scratch_size) {
  q->head = q->tail = NULL;
  q->stopping = 0;
  q->nthreads = 0;
  q->scratch_size = scratch_size;
  q->threads = calloc((size_t) nthreads, sizeof(pthread_t));
  if (!q->threads) return ENOMEM;
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->ready, NULL);
  for (int i = 0; i < nthreads; i++) {
    int err = pthread_create(&q->threads[i], NULL, worker, q);
    if (err) {
      lf_queue_stop(q);
      return err;
    }
    q->nthreads++;
  }
  return 0;
}

void lf_queue_push(lf_work_queue *q, lf_job *job) {
  job->next = NULL;
  pthread_mutex_lock(&q->lock);
  if (q->stopping || q->nthreads == 0) {
    pthread_mutex_unlock(&q->lock);
    job->run(job, NULL);
    return;
  }
  if (q->tail) q->tail->next = job;
  else q->head = job;
  q->tail = job;
  pthread_cond_signal(&q->ready);
  pthread_mutex_unlock(&q->lock);
}

void lf_queue_stop(lf_work_queue *q) {
  if (!q->threads) return;
  pthread_mutex_lock(&q->lock);
  q->stopping = 1;
  pthread_cond_broadcast(&q->ready);
  pthread_mutex_unlock(&q->lock);
  for (int i = 0; i < q->nthreads; i++) pthread_join(q->threads[i], NULL);
  free(q->threads);
  q->threads = NULL;
  q->nthreads = 0;
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->ready);
}
