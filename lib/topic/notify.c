/* lib/topic/notify.c - waking consumers when records are appended. */
#include <stdlib.h>
#include <unistd.h>

#include "common/common.h"
#include "topic/topic.h"

int klog__waitq_add(kt_topic *t, int part, kt_waiter *w)
{
    kt_waitq *q = t->wq[part];
    pthread_mutex_lock(&q->mu);
    if (q->n == q->cap) {
        unsigned nc = q->cap ? q->cap * 2 : 4;
        kt_waiter **n = realloc(q->w, nc * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&q->mu);
            return -ENOMEM;
        }
        q->w = n;
        q->cap = nc;
    }
    q->w[q->n++] = w;
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void klog__waitq_remove(kt_topic *t, int part, kt_waiter *w)
{
    kt_waitq *q = t->wq[part];
    pthread_mutex_lock(&q->mu);
    for (unsigned i = 0; i < q->n; i++)
        if (q->w[i] == w) {
            q->w[i] = q->w[--q->n];
            break;
        }
    pthread_mutex_unlock(&q->mu);
}

void klog__waitq_arm(kt_topic *t, int part, int delta)
{
    if (delta > 0)
        atomic_fetch_add(&t->wq[part]->armed, 1);
    else
        atomic_fetch_sub(&t->wq[part]->armed, 1);
}

void klog__waitq_notify(void *arg, int64_t end_offset)
{
    kt_waitq *q = arg;
    (void)end_offset;
    /* seq_cst pairs with the waiter's arm-then-recheck: either it sees our
     * data, or we see its armed flag. */
    if (atomic_load(&q->armed) == 0)
        return;
    pthread_mutex_lock(&q->mu);
    for (unsigned i = 0; i < q->n; i++) {
        kt_waiter *w = q->w[i];
        if (atomic_exchange(&w->armed, 0)) {
            uint64_t one = 1;
            ssize_t r = write(w->efd, &one, sizeof one);
            (void)r; /* EAGAIN: the counter is already non-zero, it is readable */
        }
    }
    pthread_mutex_unlock(&q->mu);
}
