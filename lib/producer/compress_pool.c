/*
 * lib/producer/compress_pool.c - a producer's compression threads
 * (compress_pool.h).
 *
 * One mutex and one condition variable over a FIFO of jobs.  A thread
 * sleeps only when the FIFO is empty; a submit wakes one sleeper.  Stop
 * (kp_pool_free) lets the threads empty the FIFO first, so a job that was
 * submitted always runs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/common.h"
#include "producer/compress_pool.h"

struct kp_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a job came, or stop */
    kp_job *head, *tail;
    int idle;               /* threads waiting on cv */
    bool stopping;
    int n;                  /* threads started */
    char name[16];
    pthread_t th[];
};

static void *pool_main(void *arg)
{
    kp_pool *pool = arg;
    kf_codec *codec = NULL;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        kp_job *j = pool->head;
        if (!j) {
            if (pool->stopping)
                break;
            pool->idle++;
            pthread_cond_wait(&pool->cv, &pool->mu);
            pool->idle--;
            continue;
        }
        pool->head = j->next;
        if (!pool->head)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->mu);
        j->next = NULL;
        j->run(j, &codec); /* j may be gone once this returns */
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    kf_codec_free(codec);
    return NULL;
}

int kp_pool_new(kp_pool **out, int n, const char *name)
{
    *out = NULL;
    if (n < 1 || n > KP_POOL_MAX)
        return -EINVAL;
    kp_pool *pool = calloc(1, sizeof *pool + (size_t)n * sizeof pool->th[0]);
    if (!pool)
        return -ENOMEM;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    snprintf(pool->name, sizeof pool->name, "%s", name);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&pool->th[i], NULL, pool_main, pool) != 0) {
            kp_pool_free(pool); /* stops the ones started */
            return -EAGAIN;
        }
        pool->n++;
        /* named here, not by the thread: the name is there when this returns */
        pthread_setname_np(pool->th[i], pool->name); /* for top -H, perf */
    }
    *out = pool;
    return 0;
}

void kp_pool_submit(kp_pool *pool, kp_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&pool->mu);
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    if (pool->idle > 0)
        pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

void kp_pool_free(kp_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n; i++)
        pthread_join(pool->th[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool);
}

int kp_pool_auto_size(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus <= 1)
        return 0;
    return (int)KLOG_MIN(cpus, 4L);
}
