/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* retire.c — the engine behind RetireNode(): take a NUMA node's memory out of service safely and
 * completely, or leave the host as it was.
 *
 *   preflight ─► pre-drain hooks ─► drain ─► eject ─► wait for removal ─► verify ─► post hooks
 *                                     │ fail/cancel
 *                                     └─► rollback (online again, into the old zone)
 *
 * Every step is journaled in StateDirectory before it acts (journal.c), so that a crash at any
 * point leaves a record a restart reconciles (retire_recover()). The drain offlines one block at
 * a time in the worker thread (worker.c): an offline write can migrate pages for minutes and only
 * a signal stops it, so each write has a timeout, can be cancelled, and never runs on the event
 * loop; D-Bus stays responsive throughout. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>

#include "hooks.h"
#include "hotplug-bus.h"
#include "journal.h"
#include "log.h"
#include "manager-dbus.h"
#include "preflight.h"
#include "retire.h"
#include "scan.h"
#include "state.h"
#include "worker.h"

#define VERIFY_NODE_USEC (5 * USEC_PER_SEC)
#define ROLLBACK_TIMEOUT_USEC (120 * USEC_PER_SEC)
#define EJECT_ROUNDS_MAX 3
#ifndef USEC_PER_SEC
#define USEC_PER_SEC UINT64_C(1000000)
#endif

typedef enum RetireStep {
        STEP_QUEUED,
        STEP_HOOKS,
        STEP_DRAIN,             /* a write in flight, or waiting out a backoff */
        STEP_ROLLBACK,
        STEP_EJECT_WAIT,        /* ejected; waiting for the blocks' remove events */
        STEP_VERIFY_WAIT,       /* blocks gone; waiting for the node's remove event */
        STEP_DONE,
} RetireStep;

typedef struct Retire {
        Job *job;
        Manager *m;
        RetireStep step;

        /* The [Retire] settings when the job started: a reload does not change a running job. */
        uint64_t block_timeout_usec, backoff_usec, remove_timeout_usec, hook_timeout_usec;
        unsigned retries;
        bool rollback, eject, offline_cpus;

        JobJournal journal;
        uint64_t *order;
        size_t n_order, pos;
        unsigned attempt;               /* tries of the current block so far */
        unsigned retries_used;          /* all retries of this job, for the result */
        uint64_t blocks_done, blocks_skipped;

        WorkBatch *batch;
        HookRun *hooks;
        sd_event_source *timer;

        bool cancel_requested;
        bool waiting_for_turn;          /* another retire is draining: the kernel serialises anyway */
        bool recovered;                 /* rebuilt from a journal after a restart */
        JournalPhase recovered_phase;   /* where the interrupted job was */
        bool quarantined_here;          /* this job set the quarantine (a rollback lifts it) */
        JobState final_state;           /* what a rollback ends in: failed or cancelled */
        char *failure;                  /* why the drain failed, one sentence */
        const char *failure_error;      /* its D-Bus error name */

        char **devices;
        size_t n_devices;
        unsigned eject_rounds;
        size_t n_not_ejectable;
        char cpu_note[128];
} Retire;

static void retire_free(Retire *r) {
        if (!r)
                return;
        sd_event_source_disable_unref(r->timer);
        hook_run_free(r->hooks);
        job_journal_done(&r->journal);
        free(r->order);
        free(r->failure);
        for (size_t i = 0; i < r->n_devices; i++)
                free(r->devices[i]);
        free(r->devices);
        free(r);
}

static void engine_free_data(Job *j) {
        Retire *r = j->engine_data;

        if (r && r->batch && r->m->worker)
                worker_cancel(r->m->worker, r->batch);
        retire_free(r);
        j->engine_data = NULL;
}

bool retire_error_is_transient(int error) {
        error = error < 0 ? -error : error;
        return error == EBUSY || error == EAGAIN || error == ETIMEDOUT || error == EINTR;
}

uint64_t retire_backoff_usec(uint64_t first_usec, unsigned attempt) {
        uint64_t v = first_usec;

        for (unsigned i = 1; i < attempt && v < 60 * USEC_PER_SEC; i++)
                v *= 2;
        return MIN(v, 60 * USEC_PER_SEC);
}

static int cmp_desc(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? 1 : x > y ? -1 : 0;
}

size_t retire_drain_order(const Model *m, int node, uint64_t **ret) {
        size_t n_movable = 0, n_other = 0, k = 0;
        uint64_t *v;

        for (uint64_t i = 0; i < m->n_block_slots; i++) {
                const Block *b = model_block(m, i);
                if (!b || b->nid != node || b->extra_nodes > 0 || b->state == BLOCK_OFFLINE)
                        continue;
                if (b->zone == ZONE_MOVABLE)
                        n_movable++;
                else
                        n_other++;
        }
        v = malloc(MAX(n_movable + n_other, (size_t) 1) * sizeof(uint64_t));
        if (!v) {
                *ret = NULL;
                return 0;
        }
        for (int pass = 0; pass < 2; pass++)
                for (uint64_t i = 0; i < m->n_block_slots; i++) {
                        const Block *b = model_block(m, i);
                        if (!b || b->nid != node || b->extra_nodes > 0 || b->state == BLOCK_OFFLINE)
                                continue;
                        if ((pass == 0) == (b->zone == ZONE_MOVABLE))
                                v[k++] = i;
                }
        qsort(v, n_movable, sizeof(uint64_t), cmp_desc);
        qsort(v + n_movable, n_other, sizeof(uint64_t), cmp_desc);
        *ret = v;
        return k;
}

static uint64_t realtime_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static double elapsed_sec(const Retire *r) {
        struct timespec ts;
        uint64_t now;

        if (r->recovered && r->journal.started_usec > 0) {
                clock_gettime(CLOCK_REALTIME, &ts);
                now = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
                return now > r->journal.started_usec ? (now - r->journal.started_usec) / 1e6 : 0.0;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
        return r->job->start_monotonic && now > r->job->start_monotonic ? (now - r->job->start_monotonic) / 1e6 : 0.0;
}

static void journal_save(Retire *r) {
        int k;

        if (r->m->state_fd < 0)
                return;
        k = job_journal_save(r->m->state_fd, &r->journal);
        if (k < 0)
                log_struct_errno(LOG_ERR, k, LOG_FIELDS(.node = r->job->node),
                                 "Failed to save the journal of job %u, a crash now could not be recovered: %m",
                                 r->job->id);
}

static void set_retiring(Retire *r, bool on) {
        int node = r->job->node;

        if (node < 0 || node >= MODEL_MAX_NODES)
                return;
        if (on)
                r->m->retiring[node / 64] |= UINT64_C(1) << (node % 64);
        else
                r->m->retiring[node / 64] &= ~(UINT64_C(1) << (node % 64));
        /* The kernel's in-line onlining must not put memory back onto a node being drained. */
        (void) manager_update_kernel_online(r->m);
}

static void start_next_queued(Manager *m);

static void run_post_hooks(Retire *r, const char *phase, const char *result);

/* The single exit of every job: journal removed, hooks told, the next queued retire started. */
_printf_(4, 5) static void retire_finish(Retire *r, JobState state, const char *error, const char *format, ...) {
        _cleanup_free_ char *msg = NULL, *full = NULL;
        Manager *m = r->m;
        va_list ap;

        /* Shutting down (SIGTERM, teardown): stop here and keep the journal, so that the next
         * start reconciles this job exactly as after a crash. Nothing is stranded silently. */
        if (m->exiting)
                return;
        r->step = STEP_DONE;
        r->timer = sd_event_source_disable_unref(r->timer);
        va_start(ap, format);
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (r->recovered && msg &&
            asprintf(&full, "Interrupted by a restart of hotplugd (in its %s phase) and recovered: %s",
                     journal_phase_to_string(r->recovered_phase), msg) < 0)
                full = NULL;

        r->journal.phase = JOURNAL_PHASE_DONE;
        if (m->state_fd >= 0)
                (void) job_journal_remove(m->state_fd, r->journal.job_id);
        set_retiring(r, false);
        /* job_finish() logs the result, with the job's fields. */
        run_post_hooks(r, state == JOB_COMPLETED ? "success" : "failure", full ?: msg);
        (void) job_finish(r->job, state, error, "%s", full ?: msg ?: "");
        start_next_queued(m);
}

static void on_post_hooks_done(HookRun *run, int result, const char *hook, const char *reason, void *userdata) {
        hook_run_free(run);
}

static void run_post_hooks(Retire *r, const char *phase, const char *result) {
        HookEnvironment env = { .phase = phase, .node = r->job->node, .job_id = r->job->id, .result = result };
        HookRun *run = NULL;

        /* Post hooks inform; they outlive the job and free themselves. */
        if (hooks_run(r->m->event, r->m->root_path, &env, r->hook_timeout_usec, on_post_hooks_done, NULL, &run) < 0)
                log_warning("Failed to run %s hooks of job %u.", phase, r->job->id);
}

static void publish_progress(Retire *r, int64_t current) {
        uint64_t bs = r->m->model->block_size;
        uint64_t total = r->blocks_done + (r->n_order - MIN(r->pos, r->n_order));

        job_set_progress(r->job, r->blocks_done, total, r->blocks_done * bs, total * bs, current);
}

/* ---- rollback ---------------------------------------------------------------------------- */

static const char *online_value_for_zone(Zone z) {
        return z == ZONE_MOVABLE ? "online_movable" : "online_kernel";
}

static void rollback_done(WorkBatch *b, void *userdata) {
        Retire *r = userdata;
        size_t n = 0, failed = 0, restored = 0;
        WorkItem *items = work_batch_items(b, &n);
        char list[512] = "";
        size_t off = 0;

        r->batch = NULL;
        if (r->m->exiting)
                return; /* interrupted by shutdown: the journal still lists what to restore */
        for (size_t i = 0; i < n; i++) {
                uint64_t index = items[i].tag;
                JournalBlock *jb = job_journal_find_block(&r->journal, index);
                const Block *blk;

                (void) scan_block(r->m->root, r->m->model, index);
                blk = model_block(r->m->model, index);
                if (blk && blk->state == BLOCK_ONLINE) {
                        restored++;
                        if (jb)
                                jb->state = JOURNAL_BLOCK_RESTORED;
                        continue;
                }
                failed++;
                if (jb)
                        jb->state = JOURNAL_BLOCK_RESTORE_FAILED;
                if (off < sizeof(list) - 48)
                        off += (size_t) snprintf(list + off, sizeof(list) - off, "%s%" PRIu64 " (%s)", off ? ", " : "",
                                                 index, items[i].result < 0 ? strerror(-items[i].result) : "still offline");
                log_struct_errno(LOG_ERR, items[i].result, LOG_FIELDS(.node = r->job->node, .block = (int64_t) index),
                                 "Rollback could not online memory block %" PRIu64 " again: %m", index);
        }
        journal_save(r);
        if (r->quarantined_here)
                (void) manager_set_quarantine(r->m, r->job->node, false);
        if (failed > 0)
                retire_finish(r, r->final_state, r->failure_error, "%s Rolled back %zu blocks; %zu could not be restored and stay offline: %s.",
                              r->failure, restored, failed, list);
        else
                retire_finish(r, r->final_state, r->failure_error, "%s Rolled back: %zu blocks are online again in their zones.",
                              r->failure, restored);
}

/* Ends a drain that failed or was cancelled: online again, in its old zone, every block this
 * job offlined, and say which could not be. */
_printf_(4, 5) static void start_rollback(Retire *r, JobState final_state, const char *error, const char *format, ...) {
        WorkItem *items = NULL;
        size_t n = 0;
        Worker *w;
        va_list ap;
        int k;

        r->timer = sd_event_source_disable_unref(r->timer);
        r->final_state = final_state;
        r->failure_error = error;
        free(r->failure);
        va_start(ap, format);
        if (vasprintf(&r->failure, format, ap) < 0)
                r->failure = NULL;
        va_end(ap);

        /* A write interrupted at the crash or by a cancel may still have completed: ask sysfs. */
        for (size_t i = 0; i < r->journal.n_blocks; i++) {
                JournalBlock *jb = &r->journal.blocks[i];
                const Block *b;

                (void) scan_block(r->m->root, r->m->model, jb->index);
                b = model_block(r->m->model, jb->index);
                if (jb->state == JOURNAL_BLOCK_OFFLINING)
                        jb->state = b && b->state == BLOCK_OFFLINE ? JOURNAL_BLOCK_OFFLINED : JOURNAL_BLOCK_RESTORED;
        }

        if (!r->rollback) {
                size_t stranded = 0;
                for (size_t i = 0; i < r->journal.n_blocks; i++)
                        stranded += r->journal.blocks[i].state == JOURNAL_BLOCK_OFFLINED;
                retire_finish(r, final_state, error, "%s Rollback=no: %zu blocks this job offlined stay offline.",
                              strna(r->failure), stranded);
                return;
        }

        r->step = STEP_ROLLBACK;
        (void) job_set_state(r->job, JOB_ROLLING_BACK);
        r->journal.phase = JOURNAL_PHASE_ROLLBACK;
        journal_save(r);

        items = calloc(MAX(r->journal.n_blocks, (size_t) 1), sizeof(WorkItem));
        if (!items) {
                retire_finish(r, final_state, error, "%s Out of memory before the rollback.", strna(r->failure));
                return;
        }
        for (size_t i = 0; i < r->journal.n_blocks; i++) {
                JournalBlock *jb = &r->journal.blocks[i];
                const Block *b = model_block(r->m->model, jb->index);

                if (jb->state != JOURNAL_BLOCK_OFFLINED || !b || b->state != BLOCK_OFFLINE)
                        continue;
                snprintf(items[n].path, sizeof(items[n].path), "memory%" PRIu64 "/state", jb->index);
                snprintf(items[n].value, sizeof(items[n].value), "%s", online_value_for_zone(jb->zone));
                items[n].timeout_usec = ROLLBACK_TIMEOUT_USEC;
                items[n].tag = jb->index;
                n++;
        }
        if (n == 0) {
                free(items);
                retire_finish(r, final_state, error, "%s Nothing to roll back.", strna(r->failure));
                return;
        }
        k = manager_get_worker(r->m, &w);
        if (k >= 0)
                k = worker_submit(w, items, n, NULL, rollback_done, r, &r->batch);
        free(items);
        if (k < 0)
                retire_finish(r, final_state, error, "%s Rollback could not start (%s); the blocks this job offlined stay offline.",
                              strna(r->failure), strerror(-k));
}

/* ---- drain ------------------------------------------------------------------------------- */

static void drain_next(Retire *r);
static void start_eject(Retire *r);

static int on_backoff(sd_event_source *s, uint64_t usec, void *userdata) {
        Retire *r = userdata;

        r->timer = sd_event_source_disable_unref(r->timer);
        drain_next(r);
        return 0;
}

static const char *einval_reason(const Block *b) {
        if (b && b->zone == ZONE_NONE)
                return "it spans several zones or nodes (valid_zones \"none\"), which the kernel never offlines";
        return "the kernel refused it (EINVAL: the block has holes, or spans zones or nodes)";
}

static void offline_done(WorkBatch *batch, void *userdata) {
        Retire *r = userdata;
        size_t n = 0;
        WorkItem *item = &work_batch_items(batch, &n)[0];
        uint64_t index = item->tag;
        const Block *b;
        int result = item->result;

        r->batch = NULL;
        if (r->m->exiting)
                return; /* interrupted by shutdown: the journal says "in flight", the restart checks */
        (void) scan_block(r->m->root, r->m->model, index);
        b = model_block(r->m->model, index);

        /* What the kernel says wins over what the write returned: an interrupted write may have
         * finished, and a block may have been offlined by someone else meanwhile. */
        if (!b || b->state == BLOCK_OFFLINE) {
                JournalBlock *jb = job_journal_find_block(&r->journal, index);
                if (jb)
                        jb->state = JOURNAL_BLOCK_OFFLINED;
                journal_save(r);
                r->blocks_done++;
                r->pos++;
                r->attempt = 0;
                log_struct(LOG_INFO, LOG_FIELDS(.message_id = HOTPLUGD_MESSAGE_BLOCK_OFFLINED, .node = r->job->node, .block = (int64_t) index),
                           "Retire job %u: memory block %" PRIu64 " offline after %.1f s.", r->job->id, index,
                           item->duration_usec / 1e6);
                publish_progress(r, -1);
                drain_next(r);
                return;
        }
        /* Still online: the write did not take. The journal entry goes back to "not ours". */
        {
                JournalBlock *jb = job_journal_find_block(&r->journal, index);
                if (jb)
                        jb->state = JOURNAL_BLOCK_RESTORED;
                journal_save(r);
        }

        if (result == -ECANCELED || r->cancel_requested) {
                start_rollback(r, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Cancelled during the drain of block %" PRIu64 ".", index);
                return;
        }
        if (retire_error_is_transient(result) && r->attempt < r->retries) {
                uint64_t wait = retire_backoff_usec(r->backoff_usec, ++r->attempt);

                r->retries_used++;
                log_struct_errno(LOG_NOTICE, result, LOG_FIELDS(.node = r->job->node, .block = (int64_t) index),
                                 "Retire job %u: memory block %" PRIu64 " did not go offline (%s), try %u of %u in %.1f s.",
                                 r->job->id, index, result == -ETIMEDOUT ? "timed out" : strerror(-result), r->attempt + 1,
                                 r->retries + 1, wait / 1e6);
                if (sd_event_add_time_relative(r->m->event, &r->timer, CLOCK_MONOTONIC, wait, 0, on_backoff, r) < 0)
                        drain_next(r);
                return;
        }
        if (result == -EINVAL)
                start_rollback(r, JOB_FAILED, HOTPLUG_ERROR_NOT_REMOVABLE, "Memory block %" PRIu64 " cannot be offlined: %s.",
                               index, einval_reason(b));
        else if (retire_error_is_transient(result))
                start_rollback(r, JOB_FAILED, result == -ETIMEDOUT ? HOTPLUG_ERROR_TIMEOUT : HOTPLUG_ERROR_BUSY,
                               "Memory block %" PRIu64 " did not go offline after %u tries (%s).", index, r->attempt + 1,
                               result == -ETIMEDOUT ? "each write timed out" : strerror(-result));
        else
                start_rollback(r, JOB_FAILED, HOTPLUG_ERROR_FAILED, "Offlining memory block %" PRIu64 " failed: %s.", index,
                               strerror(-result));
}

static void drain_next(Retire *r) {
        WorkItem item = {};
        const Block *b;
        Worker *w;
        uint64_t index;
        int k;

        if (r->cancel_requested) {
                start_rollback(r, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Cancelled during the drain.");
                return;
        }
        /* Skip what is no longer online: offlined or removed by someone else is not ours. */
        while (r->pos < r->n_order) {
                b = model_block(r->m->model, r->order[r->pos]);
                if (b && b->state == BLOCK_ONLINE)
                        break;
                r->pos++;
                r->blocks_skipped++;
        }
        if (r->pos >= r->n_order) {
                start_eject(r);
                return;
        }
        index = r->order[r->pos];
        b = model_block(r->m->model, index);
        k = job_journal_set_block(&r->journal, index, b->zone, JOURNAL_BLOCK_OFFLINING);
        if (k < 0) {
                start_rollback(r, JOB_FAILED, HOTPLUG_ERROR_FAILED, "Could not journal block %" PRIu64 ": %s.", index, strerror(-k));
                return;
        }
        /* The journal says "in flight" before the write starts: a crash now is recoverable. */
        journal_save(r);
        publish_progress(r, (int64_t) index);

        snprintf(item.path, sizeof(item.path), "memory%" PRIu64 "/state", index);
        snprintf(item.value, sizeof(item.value), "offline");
        item.timeout_usec = r->block_timeout_usec;
        item.tag = index;
        k = manager_get_worker(r->m, &w);
        if (k >= 0)
                k = worker_submit(w, &item, 1, NULL, offline_done, r, &r->batch);
        if (k < 0)
                start_rollback(r, JOB_FAILED, HOTPLUG_ERROR_FAILED, "Could not start the offline write: %s.", strerror(-k));
}

static void start_drain(Retire *r) {
        free(r->order);
        r->n_order = retire_drain_order(r->m->model, r->job->node, &r->order);
        r->pos = 0;
        r->attempt = 0;
        r->step = STEP_DRAIN;
        r->journal.phase = JOURNAL_PHASE_DRAIN;
        journal_save(r);
        log_struct(LOG_NOTICE, LOG_FIELDS(.node = r->job->node),
                   "Retire job %u: draining %zu online memory blocks of node %d (movable first, highest address first).",
                   r->job->id, r->n_order, r->job->node);
        drain_next(r);
}

/* ---- eject, removal, verify -------------------------------------------------------------- */

static void verify_node(Retire *r, bool final);

static int on_remove_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Retire *r = userdata;
        size_t left = 0;

        r->timer = sd_event_source_disable_unref(r->timer);
        for (size_t i = 0; i < r->journal.n_blocks; i++)
                left += model_block(r->m->model, r->journal.blocks[i].index) != NULL;
        retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_TIMEOUT,
                      "Drained and ejected, but %zu memory blocks were still present %.0f s after the eject; they stay offline and node %d stays quarantined.",
                      left, r->remove_timeout_usec / 1e6, r->job->node);
        return 0;
}

static bool device_in(char **devices, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(devices[i], name))
                        return true;
        return false;
}

static void set_quarantine(Retire *r) {
        int k;

        if (!manager_node_is_quarantined(r->m, r->job->node))
                r->quarantined_here = true;
        k = manager_set_quarantine(r->m, r->job->node, true);
        if (k < 0)
                log_warning_errno(k, "Failed to persist the quarantine of node %d: %m", r->job->node);
}

static void start_eject(Retire *r) {
        Manager *m = r->m;
        const Node *n;
        size_t ejected = 0;

        /* The drain is done: the node is not to get memory back by policy, whatever follows. */
        set_quarantine(r);
        if ((r->job->flags & HOTPLUG_RETIRE_NO_EJECT) || !r->eject) {
                retire_finish(r, JOB_COMPLETED, NULL,
                              "Drained node %d: %" PRIu64 " blocks (%" PRIu64 " MiB) offline in %.1f s%s%s; not ejected (%s). Node %d is quarantined.",
                              r->job->node, r->blocks_done, (r->blocks_done * m->model->block_size) >> 20,
                              elapsed_sec(r), r->retries_used ? ", with retries" : "",
                              r->cpu_note, (r->job->flags & HOTPLUG_RETIRE_NO_EJECT) ? "--no-eject" : "Eject=no", r->job->node);
                return;
        }

        /* Which ACPI memory devices own the node's memory, and may they all go? Re-read every
         * block of them right before the eject: another agent may have onlined one meanwhile. */
        for (size_t i = 0; i < r->n_devices; i++)
                free(r->devices[i]);
        r->n_devices = 0;
        r->n_not_ejectable = 0;
        for (uint64_t i = 0; i < m->model->n_block_slots; i++) {
                const Block *b = model_block(m->model, i);
                const char *dev;

                if (!b || b->nid != r->job->node)
                        continue;
                (void) scan_block(m->root, m->model, i);
                b = model_block(m->model, i);
                if (!b)
                        continue;
                if (b->state != BLOCK_OFFLINE) {
                        if (++r->eject_rounds <= EJECT_ROUNDS_MAX) {
                                log_notice("Retire job %u: memory block %" PRIu64 " is online again before the eject; draining it.",
                                           r->job->id, i);
                                start_drain(r);
                        } else
                                retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_BUSY,
                                              "Another agent keeps onlining memory of node %d (block %" PRIu64 "); not ejecting.",
                                              r->job->node, i);
                        return;
                }
                if (b->device == 0) {
                        r->n_not_ejectable++;
                        continue;
                }
                dev = m->model->devices[b->device - 1].name;
                if (!device_in(r->devices, r->n_devices, dev)) {
                        char **p = realloc(r->devices, (r->n_devices + 1) * sizeof(char *));
                        if (!p || !(p[r->n_devices] = strdup(dev))) {
                                if (p)
                                        r->devices = p;
                                retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_FAILED, "Out of memory before the eject.");
                                return;
                        }
                        r->devices = p;
                        r->n_devices++;
                }
        }

        r->journal.phase = JOURNAL_PHASE_EJECT;
        journal_save(r);
        for (size_t i = 0; i < r->n_devices; i++) {
                char path[128];
                int k;

                (void) xsprintf(path, "sys/bus/acpi/devices/%s/eject", r->devices[i]);
                k = sysfs_write_at(m->root->root_fd, path, "1");
                if (k < 0) {
                        retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_FAILED,
                                      "Drained node %d, but ejecting %s failed: %s. Its blocks stay offline; node %d is quarantined.",
                                      r->job->node, r->devices[i], strerror(-k), r->job->node);
                        return;
                }
                ejected++;
                log_struct(LOG_NOTICE, LOG_FIELDS(.node = r->job->node, .extra = "HOTPLUGD_EJECT=1"),
                           "Retire job %u: ejected %s.", r->job->id, r->devices[i]);
        }
        n = model_node(m->model, r->job->node);
        if (ejected == 0) {
                retire_finish(r, JOB_COMPLETED, NULL,
                              "Drained node %d (%" PRIu64 " blocks); it has no ejectable memory device (%zu blocks are boot, virtio-mem or dax memory), so its memory stays offline and the node %s.",
                              r->job->node, r->blocks_done, r->n_not_ejectable, n && n->online ? "stays online" : "is offline");
                return;
        }
        r->step = STEP_EJECT_WAIT;
        r->journal.phase = JOURNAL_PHASE_VERIFY;
        journal_save(r);
        if (sd_event_add_time_relative(m->event, &r->timer, CLOCK_MONOTONIC, r->remove_timeout_usec, 0, on_remove_timeout, r) < 0)
                log_warning("Retire job %u: no timeout for the removal.", r->job->id);
        retire_model_changed(m);
}

static int on_verify_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Retire *r = userdata;

        r->timer = sd_event_source_disable_unref(r->timer);
        verify_node(r, true);
        return 0;
}

/* The kernel offlines the node itself, right after removing its last memory, if its rule holds;
 * if the node stays, say why by that rule. */
static void verify_node(Retire *r, bool final) {
        const Node *n = model_node(r->m->model, r->job->node);
        uint64_t mib = (r->blocks_done * r->m->model->block_size) >> 20;
        unsigned blockers;
        char why[256] = "";
        size_t off = 0;

        if (!n || !n->online) {
                char ejected[64];

                /* A job recovered after its eject began does not know which devices went before
                 * the restart (the journal records blocks, not devices): no count then. */
                if (r->recovered && (r->recovered_phase == JOURNAL_PHASE_EJECT || r->recovered_phase == JOURNAL_PHASE_VERIFY))
                        (void) xsprintf(ejected, "its memory devices ejected");
                else
                        (void) xsprintf(ejected, "%zu memory devices ejected", r->n_devices);
                retire_finish(r, JOB_COMPLETED, NULL,
                              "Node %d retired in %.1f s: %" PRIu64 " blocks (%" PRIu64 " MiB) drained%s, %s, and the node is offline.",
                              r->job->node, elapsed_sec(r), r->blocks_done, mib, r->retries_used ? " after retries" : "", ejected);
                return;
        }
        if (!final) {
                r->step = STEP_VERIFY_WAIT;
                r->timer = sd_event_source_disable_unref(r->timer);
                if (sd_event_add_time_relative(r->m->event, &r->timer, CLOCK_MONOTONIC, VERIFY_NODE_USEC, 0, on_verify_timeout, r) >= 0)
                        return;
        }
        blockers = node_offline_blockers(n);
        for (unsigned b = 1; b <= BLOCKER_ZONE_DEVICE; b <<= 1)
                if (blockers & b)
                        off += (size_t) snprintf(why + off, sizeof(why) - off, "%s%s", off ? ", " : "", offline_blocker_to_string(b));
        if (blockers)
                retire_finish(r, JOB_COMPLETED, NULL,
                              "Node %d: %" PRIu64 " blocks (%" PRIu64 " MiB) drained and %zu devices ejected, but the node stays online by the kernel's rule (%s)%s.",
                              r->job->node, r->blocks_done, mib, r->n_devices, why,
                              (blockers & BLOCKER_HAS_CPUS) ? ": its CPUs are present until they are hot-removed" : "");
        else
                retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_FAILED,
                              "Node %d: all memory removed and nothing holds the node by the kernel's rule, yet the kernel did not offline it (kernels 4.13 to 5.3 without \"mm/memory_hotplug: Fix try_offline_node()\" behave so).",
                              r->job->node);
}

void retire_model_changed(Manager *m) {
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                Retire *r;
                bool gone = true;

                if (j->engine != &retire_engine || !(r = j->engine_data))
                        continue;
                if (r->step == STEP_VERIFY_WAIT) {
                        const Node *n = model_node(m->model, j->node);
                        if (!n || !n->online)
                                verify_node(r, true);
                        continue;
                }
                if (r->step != STEP_EJECT_WAIT)
                        continue;
                for (uint64_t b = 0; b < m->model->n_block_slots && gone; b++) {
                        const Block *blk = model_block(m->model, b);
                        if (blk && blk->device > 0 && device_in(r->devices, r->n_devices, m->model->devices[blk->device - 1].name))
                                gone = false;
                }
                if (gone) {
                        r->timer = sd_event_source_disable_unref(r->timer);
                        log_notice("Retire job %u: the ejected memory is gone; verifying node %d.", j->id, j->node);
                        verify_node(r, false);
                }
        }
}

/* ---- start, queue, cancel ---------------------------------------------------------------- */

static bool other_retire_running(Manager *m, Job *self) {
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                if (j != self && j->engine == &retire_engine && !job_state_is_final(j->state) && j->state != JOB_QUEUED)
                        return true;
        }
        return false;
}

static int engine_start(Job *j);

static void start_next_queued(Manager *m) {
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                Retire *r = j->engine_data;
                if (j->engine == &retire_engine && j->state == JOB_QUEUED && r && r->waiting_for_turn) {
                        r->waiting_for_turn = false;
                        if (engine_start(j) < 0 && !job_state_is_final(j->state))
                                (void) job_finish(j, JOB_FAILED, HOTPLUG_ERROR_FAILED, "The job could not start.");
                        return;
                }
        }
}

static void on_pre_hooks_done(HookRun *run, int result, const char *hook_, const char *reason_, void *userdata) {
        _cleanup_free_ char *hook = hook_ ? strdup(hook_) : NULL, *reason = reason_ ? strdup(reason_) : NULL;
        Retire *r = userdata;

        /* hook and reason point into the run: copied above, before it is freed. */
        r->hooks = hook_run_free(r->hooks);
        if (r->cancel_requested) {
                retire_finish(r, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Cancelled before the drain; nothing was changed.");
                return;
        }
        if (result != 0) {
                retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_FAILED, "Vetoed by hook %s before the drain: %s. Nothing was changed.",
                              strna(hook), result < 0 ? strerror(-result) : strna(reason));
                return;
        }
        start_drain(r);
}

/* With OfflineCPUs: the node's CPUs go offline first; the node still cannot go offline until
 * they are hot-removed, and the result says so. */
static int offline_node_cpus(Retire *r) {
        const Node *n = model_node(r->m->model, r->job->node);
        unsigned done = 0;

        if (!n)
                return 0;
        for (unsigned cpu = 0; cpu < MODEL_MAX_CPUS; cpu++) {
                char path[32];
                int k;

                if (!cpuset_isset(&n->online_cpus, cpu))
                        continue;
                (void) xsprintf(path, "cpu%u/online", cpu);
                k = sysfs_write_at(r->m->root->cpu_fd, path, "0");
                if (k < 0)
                        return log_error_errno(k, "Failed to offline CPU %u of node %d: %m", cpu, r->job->node);
                done++;
        }
        (void) scan_node_cpus_online(r->m->root, r->m->model, r->job->node);
        snprintf(r->cpu_note, sizeof(r->cpu_note), "; %u CPUs offlined, the node stays online until they are hot-removed", done);
        return 0;
}

static Retire *retire_new(Job *j) {
        Manager *m = j->manager;
        Retire *r = calloc(1, sizeof(Retire));

        if (!r)
                return NULL;
        r->job = j;
        r->m = m;
        r->block_timeout_usec = m->config.block_timeout_usec;
        r->backoff_usec = m->config.retry_backoff_usec;
        r->remove_timeout_usec = m->config.remove_timeout_usec;
        r->hook_timeout_usec = m->config.hook_timeout_usec;
        r->retries = m->config.retries;
        r->rollback = m->config.rollback;
        r->eject = m->config.eject;
        r->offline_cpus = m->config.offline_cpus || (j->flags & HOTPLUG_RETIRE_OFFLINE_CPUS);
        r->journal.job_id = j->id;
        r->journal.node = j->node;
        r->journal.flags = j->flags;
        r->journal.started_usec = realtime_now();
        return r;
}

static int engine_start_recovered(Retire *r);

static int engine_start(Job *j) {
        Retire *r = j->engine_data;
        Preflight p = {};
        const Finding *blocker;
        HookEnvironment env;
        int k;

        if (!r) {
                r = retire_new(j);
                if (!r)
                        return -ENOMEM;
                j->engine_data = r;
        }
        if (other_retire_running(r->m, j)) {
                /* The kernel serialises hotplug anyway; queue behind the running retire. */
                r->waiting_for_turn = true;
                return 0;
        }
        k = job_set_state(j, JOB_RUNNING);
        if (k < 0)
                return k;
        set_retiring(r, true);
        if (r->recovered)
                return engine_start_recovered(r);

        /* 1. Preflight: changes nothing; a blocker ends the job here. */
        k = preflight_node(r->m, j->node, &p);
        if (k == -ENODEV) {
                retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_NO_SUCH_NODE, "Node %d does not exist.", j->node);
                return 0;
        }
        if (k < 0)
                return k;
        /* Present CPUs block only when we may not offline them (and then the node stays
         * online, which the result says). */
        blocker = NULL;
        for (size_t i = 0; i < p.n_findings && !blocker; i++)
                if (p.findings[i].verdict == VERDICT_BLOCKER &&
                    !(r->offline_cpus && streq(p.findings[i].code, "has-cpus")) &&
                    !streq(p.findings[i].code, "busy") /* that is this very job */)
                        blocker = &p.findings[i];
        if (blocker) {
                retire_finish(r, JOB_FAILED, preflight_error_for(blocker->code), "Preflight: %s Nothing was changed.", blocker->message);
                preflight_done(&p);
                return 0;
        }
        if (j->flags & HOTPLUG_RETIRE_DRY_RUN) {
                retire_finish(r, JOB_COMPLETED, NULL,
                              "Dry run: node %d can be retired (%u warnings); %" PRIu64 " MiB to migrate, %" PRIu64 " MiB free elsewhere. Nothing was changed.",
                              j->node, p.n_warnings, p.bytes_to_migrate >> 20, p.bytes_available >> 20);
                preflight_done(&p);
                return 0;
        }
        preflight_done(&p);

        if (r->offline_cpus) {
                k = offline_node_cpus(r);
                if (k < 0) {
                        retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_NODE_HAS_CPUS, "Could not offline the CPUs of node %d: %s.", j->node,
                                      strerror(-k));
                        return 0;
                }
        }

        /* 2. Hooks may veto, or make room (shrink hugepage pools, move pinned workloads). */
        r->step = STEP_HOOKS;
        env = (HookEnvironment){ .phase = "pre-drain", .node = j->node, .job_id = j->id };
        k = hooks_run(r->m->event, r->m->root_path, &env, r->hook_timeout_usec, on_pre_hooks_done, r, &r->hooks);
        if (k < 0) {
                retire_finish(r, JOB_FAILED, HOTPLUG_ERROR_FAILED, "Hooks could not run (%s). Nothing was changed.", strerror(-k));
                return 0;
        }
        return 0;
}

static int engine_cancel(Job *j) {
        Retire *r = j->engine_data;

        if (!r)
                return job_finish(j, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Cancelled before it started; nothing was changed.");
        switch (r->step) {
        case STEP_QUEUED:
                retire_finish(r, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Cancelled before it started; nothing was changed.");
                return 0;
        case STEP_HOOKS:
                r->hooks = hook_run_free(r->hooks);
                retire_finish(r, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Cancelled before the drain; nothing was changed.");
                return 0;
        case STEP_DRAIN:
                r->cancel_requested = true;
                if (r->batch) {
                        /* Interrupts the write in flight (EINTR inside the kernel); offline_done()
                         * then rolls back. */
                        worker_cancel(r->m->worker, r->batch);
                        return 0;
                }
                /* Between two writes (backoff): roll back now. */
                start_rollback(r, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Cancelled during the drain.");
                return 0;
        case STEP_ROLLBACK:
                return -EALREADY;
        default:
                /* The eject is under way in the kernel and firmware: nothing to take back. */
                return -EBUSY;
        }
}

const JobEngine retire_engine = {
        .start = engine_start,
        .cancel = engine_cancel,
        .free_data = engine_free_data,
};

/* ---- crash recovery ---------------------------------------------------------------------- */

static int engine_start_recovered(Retire *r) {
        Manager *m = r->m;

        switch (r->journal.phase) {
        case JOURNAL_PHASE_EJECT:
        case JOURNAL_PHASE_VERIFY: {
                bool left = false;

                /* The eject was issued: it is not taken back. If the memory went while we were
                 * down, verify the node; else eject (again) what is left and wait. */
                log_notice("Retire job %u (recovered): resuming after the eject of node %d.", r->job->id, r->job->node);
                r->blocks_done = r->journal.n_blocks;
                for (size_t i = 0; i < r->journal.n_blocks && !left; i++)
                        left = model_block(m->model, r->journal.blocks[i].index) != NULL;
                if (left)
                        start_eject(r);
                else
                        verify_node(r, false);
                return 0;
        }
        case JOURNAL_PHASE_DRAIN:
                if (m->config.on_crash == ON_CRASH_RESUME) {
                        for (size_t i = 0; i < r->journal.n_blocks; i++) {
                                JournalBlock *jb = &r->journal.blocks[i];
                                const Block *b;
                                (void) scan_block(m->root, m->model, jb->index);
                                b = model_block(m->model, jb->index);
                                if (jb->state == JOURNAL_BLOCK_OFFLINING)
                                        jb->state = b && b->state == BLOCK_OFFLINE ? JOURNAL_BLOCK_OFFLINED : JOURNAL_BLOCK_RESTORED;
                                r->blocks_done += jb->state == JOURNAL_BLOCK_OFFLINED;
                        }
                        log_notice("Retire job %u (recovered): OnCrash=resume, going on with the drain of node %d.", r->job->id,
                                   r->job->node);
                        start_drain(r);
                        return 0;
                }
                _fallthrough_;
        default:
                start_rollback(r, JOB_FAILED, HOTPLUG_ERROR_FAILED,
                               "Interrupted by a restart of hotplugd during the %s (OnCrash=%s).",
                               journal_phase_to_string(r->journal.phase), on_crash_to_string(m->config.on_crash));
                return 0;
        }
}

int retire_recover(Manager *m) {
        _cleanup_close_ int dfd = -1;
        DIR *d;
        struct dirent *de;
        int recovered = 0;

        if (m->state_fd < 0)
                return 0;
        dfd = dup(m->state_fd);
        if (dfd < 0)
                return negative_errno();
        d = fdopendir(dfd);
        if (!d)
                return negative_errno();
        dfd = -1;

        /* New jobs must not take the id (and so the file name) of a journal still on disk. */
        rewinddir(d);
        while ((de = readdir(d))) {
                unsigned id;
                if (sscanf(de->d_name, "job-%u.journal", &id) == 1 && id > m->last_job_id)
                        m->last_job_id = id;
        }

        rewinddir(d);
        while ((de = readdir(d))) {
                _cleanup_free_ char *error = NULL;
                JobJournal jj = {};
                Retire *r;
                Job *j;
                size_t len = strlen(de->d_name);
                int k;

                if (!startswith(de->d_name, "job-") || len < 12 || !streq(de->d_name + len - 8, ".journal"))
                        continue;
                k = job_journal_load(m->state_fd, de->d_name, &jj, &error);
                if (k < 0) {
                        char corrupt[300];
                        /* Never act on a record we cannot trust; keep it for the operator. */
                        snprintf(corrupt, sizeof(corrupt), "%s.corrupt", de->d_name);
                        (void) renameat(m->state_fd, de->d_name, m->state_fd, corrupt);
                        log_error("Refusing a damaged retire journal (%s); kept as %s. Check the memory of the node it was retiring.",
                                  strna(error), corrupt);
                        continue;
                }
                if (jj.phase == JOURNAL_PHASE_DONE) {
                        (void) job_journal_remove(m->state_fd, jj.job_id);
                        job_journal_done(&jj);
                        continue;
                }
                k = job_new(m, JOB_RETIRE_NODE, jj.node, jj.flags, &retire_engine, &j);
                if (k < 0) {
                        job_journal_done(&jj);
                        closedir(d);
                        return log_error_errno(k, "Failed to recover the retire journal %s: %m", de->d_name);
                }
                r = retire_new(j);
                if (!r) {
                        job_journal_done(&jj);
                        closedir(d);
                        return -ENOMEM;
                }
                /* The record keeps its file (its own id) until the job ends: replacing it here
                 * would open a window in which a crash loses it. */
                r->journal = jj;
                r->recovered = true;
                r->recovered_phase = jj.phase;
                j->engine_data = r;
                set_retiring(r, true);
                log_struct(LOG_WARNING, LOG_FIELDS(.node = jj.node),
                           "Found the journal of a retire of node %d interrupted in its %s phase (%zu blocks recorded); recovering it as job %u.",
                           jj.node, journal_phase_to_string(jj.phase), jj.n_blocks, j->id);
                recovered++;
        }
        closedir(d);
        return recovered;
}
