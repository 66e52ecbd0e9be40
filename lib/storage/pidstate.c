/*
 * lib/storage/pidstate.c - idempotent producers: the last few batches of
 * each producer id, to refuse a batch the log already holds.  All of it runs
 * under the log's append_mu (or alone, at open).
 */
#include <stdlib.h>

#include "common/common.h"
#include "storage/internal.h"

#define KS_PID_MAX 1024    /* producers remembered per log; the least recently
                            * seen is forgotten (its retries are then accepted) */

static int32_t seq_last(const kf_batch_info *bi)
{
    return (int32_t)(((uint32_t)bi->base_sequence + (uint32_t)bi->last_offset_delta) & 0x7fffffffu);
}

static void pid_push(ks_pidstate *st, const kf_batch_info *bi, int64_t base)
{
    st->head = (uint8_t)((st->head + 1) % KS_PID_BATCHES);
    st->b[st->head] = (ks_pid_batch){ bi->base_sequence, seq_last(bi), base };
    if (st->n < KS_PID_BATCHES)
        st->n++;
}

/*
 * Check a batch of an idempotent producer against what the log holds, and
 * record it.  Returns 0 (new, in sequence), KLOG_EDUPLICATE (*dup_base =
 * where it already is, or -1 if older than what is remembered),
 * KLOG_ESEQUENCE (a gap), KLOG_EFENCED (an older epoch), -ENOMEM.  With
 * `record_only` (a follower's copy of its leader's batch) nothing is
 * checked: the batch is recorded, and only -ENOMEM can fail.
 */
int ks__pid_check(ks_log *log, const kf_batch_info *bi, int64_t base, bool record_only, int64_t *dup_base,
                  ks_pidundo *u)
{
    u->slot = -1;
    u->npids = log->npids;
    if (bi->producer_id < 0 || bi->base_sequence < 0)
        return 0;
    ks_pidstate *st = NULL;
    for (unsigned i = 0; i < log->npids; i++)
        if (log->pids[i].pid == bi->producer_id) {
            st = &log->pids[i];
            break;
        }
    if (st && !record_only) {
        if (bi->producer_epoch < st->epoch)
            return KLOG_EFENCED;
        if (bi->producer_epoch == st->epoch && st->n > 0) {
            for (unsigned j = 0; j < st->n; j++) {
                const ks_pid_batch *r = &st->b[(st->head + KS_PID_BATCHES - j) % KS_PID_BATCHES];
                if (r->first_seq == bi->base_sequence && r->last_seq == seq_last(bi)) {
                    *dup_base = r->base;
                    return KLOG_EDUPLICATE;
                }
            }
            int32_t expect = (int32_t)(((uint32_t)st->b[st->head].last_seq + 1) & 0x7fffffffu);
            if (bi->base_sequence != expect) {
                uint32_t behind = ((uint32_t)expect - (uint32_t)bi->base_sequence) & 0x7fffffffu;
                if (behind > 0 && behind < (1u << 30)) {
                    *dup_base = -1; /* older than the batches remembered */
                    return KLOG_EDUPLICATE;
                }
                return KLOG_ESEQUENCE;
            }
        }
    } else if (!st) {
        if (log->npids == KS_PID_MAX) {
            unsigned lru = 0;
            for (unsigned i = 1; i < log->npids; i++)
                if (log->pids[i].tick < log->pids[lru].tick)
                    lru = i;
            st = &log->pids[lru];
        } else {
            if (!log->pids && !(log->pids = calloc(KS_PID_MAX, sizeof *log->pids)))
                return -ENOMEM;
            st = &log->pids[log->npids++];
        }
    }
    u->slot = (int)(st - log->pids);
    u->old = *st;
    if (st->pid != bi->producer_id || st->epoch != bi->producer_epoch || u->npids != log->npids) {
        memset(st, 0, sizeof *st);
        st->pid = bi->producer_id;
        st->epoch = bi->producer_epoch;
    }
    pid_push(st, bi, base);
    st->tick = ++log->pid_tick;
    return 0;
}

void ks__pid_undo(ks_log *log, const ks_pidundo *u)
{
    if (u->slot >= 0)
        log->pids[u->slot] = u->old;
    log->npids = u->npids;
}
