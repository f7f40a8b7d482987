/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* job.c — the job state machine, progress bookkeeping and the manager's job table. */
#include <stdarg.h>
#include <time.h>

#include "hotplug-bus.h"
#include "job.h"
#include "job-dbus.h"
#include "log.h"
#include "manager.h"

#define JOB_LINGER_USEC (300ULL * 1000 * 1000)  /* final jobs stay readable for 5 minutes */
#define JOB_LINGER_MAX 32                       /* ... but no more than this many */

static const char *const job_kind_table[_JOB_KIND_MAX] = {
        [JOB_RETIRE_NODE] = "retire-node",
};

static const char *const job_state_table[_JOB_STATE_MAX] = {
        [JOB_QUEUED] = "queued",
        [JOB_RUNNING] = "running",
        [JOB_ROLLING_BACK] = "rolling-back",
        [JOB_COMPLETED] = "completed",
        [JOB_FAILED] = "failed",
        [JOB_CANCELLED] = "cancelled",
};

DEFINE_STRING_TABLE_LOOKUP(job_kind, JobKind, job_kind_table, _JOB_KIND_MAX, _JOB_KIND_INVALID);
DEFINE_STRING_TABLE_LOOKUP(job_state, JobState, job_state_table, _JOB_STATE_MAX, _JOB_STATE_INVALID);

bool job_state_is_final(JobState s) {
        return s == JOB_COMPLETED || s == JOB_FAILED || s == JOB_CANCELLED;
}

bool job_state_transition_ok(JobState from, JobState to) {
        switch (from) {
        case JOB_QUEUED:
                return to == JOB_RUNNING || to == JOB_FAILED || to == JOB_CANCELLED;
        case JOB_RUNNING:
                return to == JOB_ROLLING_BACK || to == JOB_COMPLETED || to == JOB_FAILED || to == JOB_CANCELLED;
        case JOB_ROLLING_BACK:
                return to == JOB_FAILED || to == JOB_CANCELLED;
        default:
                return false;
        }
}

static uint64_t realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

Job *manager_find_job(Manager *m, unsigned id) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i]->id == id)
                        return m->jobs[i];
        return NULL;
}

Job *manager_find_node_job(Manager *m, int node) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i]->node == node && !job_state_is_final(m->jobs[i]->state))
                        return m->jobs[i];
        return NULL;
}

static void manager_remove_job(Manager *m, Job *j) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i] == j) {
                        memmove(m->jobs + i, m->jobs + i + 1, (m->n_jobs - i - 1) * sizeof(Job *));
                        m->n_jobs--;
                        return;
                }
}

Job *job_free(Job *j) {
        if (!j)
                return NULL;
        if (j->engine && j->engine->free_data)
                j->engine->free_data(j);
        sd_event_source_disable_unref(j->start_source);
        sd_event_source_disable_unref(j->linger_source);
        sd_event_source_disable_unref(j->notify_source);
        free(j->result);
        free(j->error);
        free(j);
        return NULL;
}

/* Removes a job from the table, tells the bus, frees it. */
static void job_remove(Job *j) {
        Manager *m = j->manager;

        manager_remove_job(m, j);
        job_send_removed(j);
        job_free(j);
}

void manager_free_jobs(Manager *m) {
        while (m->n_jobs > 0) {
                Job *j = m->jobs[m->n_jobs - 1];

                /* Engines get the chance to stop their work (and release the worker). */
                if (!job_state_is_final(j->state) && j->engine && j->engine->cancel)
                        (void) j->engine->cancel(j);
                m->n_jobs--;
                job_free(j);
        }
        free(m->jobs);
        m->jobs = NULL;
}

static int on_linger(sd_event_source *s, uint64_t usec, void *userdata) {
        job_remove(userdata);
        return 0;
}

/* Keeps at most JOB_LINGER_MAX final jobs: the oldest go first. */
static void prune_final_jobs(Manager *m) {
        size_t n = 0;

        for (size_t i = 0; i < m->n_jobs; i++)
                n += job_state_is_final(m->jobs[i]->state);
        for (size_t i = 0; n > JOB_LINGER_MAX && i < m->n_jobs;)
                if (job_state_is_final(m->jobs[i]->state)) {
                        job_remove(m->jobs[i]);
                        n--;
                } else
                        i++;
}

static int on_start(sd_event_source *s, void *userdata) {
        Job *j = userdata;
        int r;

        j->start_source = sd_event_source_disable_unref(j->start_source);
        if (j->state != JOB_QUEUED)
                return 0;
        if (!j->engine || !j->engine->start)
                return job_finish(j, JOB_FAILED, HOTPLUG_ERROR_NOT_SUPPORTED,
                                  "No engine runs %s jobs.", job_kind_to_string(j->kind)), 0;
        r = j->engine->start(j);
        if (r < 0 && !job_state_is_final(j->state))
                (void) job_finish(j, JOB_FAILED, HOTPLUG_ERROR_FAILED,
                                  "The job could not start: %s.", strerror(-r));
        return 0;
}

int job_new(Manager *m, JobKind kind, int node, uint64_t flags, const JobEngine *engine, Job **ret) {
        Job *j, **jobs;
        int r;

        jobs = realloc(m->jobs, (m->n_jobs + 1) * sizeof(Job *));
        if (!jobs)
                return -ENOMEM;
        m->jobs = jobs;
        j = calloc(1, sizeof(Job));
        if (!j)
                return -ENOMEM;
        *j = (Job) {
                .manager = m,
                .id = ++m->last_job_id,
                .kind = kind,
                .node = node,
                .flags = flags,
                .state = JOB_QUEUED,
                .current_block = -1,
                .engine = engine,
        };
        j->result = strdup("");
        if (!j->result) {
                free(j);
                return -ENOMEM;
        }
        if (m->event) {
                r = sd_event_add_defer(m->event, &j->start_source, on_start, j);
                if (r < 0) {
                        job_free(j);
                        return r;
                }
                (void) sd_event_source_set_description(j->start_source, "job-start");
        }
        m->jobs[m->n_jobs++] = j;
        job_send_new(j);
        if (ret)
                *ret = j;
        return 0;
}

int job_set_state(Job *j, JobState state) {
        if (j->state == state)
                return 0;
        if (!job_state_transition_ok(j->state, state))
                return -EINVAL;
        if (state == JOB_RUNNING && j->start_time == 0) {
                j->start_time = realtime_usec();
                j->start_monotonic = monotonic_usec();
                j->changed |= JOB_CHANGED_TIMES;
        }
        j->state = state;
        j->changed |= JOB_CHANGED_STATE;
        job_send_changed(j);
        return 0;
}

int job_finish(Job *j, JobState state, const char *error, const char *format, ...) {
        char *result = NULL, *e = NULL;
        va_list ap;
        int r;

        if (!job_state_is_final(state))
                return -EINVAL;
        if (!job_state_transition_ok(j->state, state))
                return -EINVAL;
        va_start(ap, format);
        r = vasprintf(&result, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (error && !(e = strdup(error))) {
                free(result);
                return -ENOMEM;
        }
        free(j->result);
        j->result = result;
        free(j->error);
        j->error = e;
        j->estimated_end = 0;
        j->current_block = -1;
        j->start_source = sd_event_source_disable_unref(j->start_source);
        log_full(state == JOB_COMPLETED ? LOG_INFO : LOG_WARNING, "Job %u (%s, node %d) %s: %s", j->id,
                 job_kind_to_string(j->kind), j->node, job_state_to_string(state), j->result);
        (void) job_set_state(j, state);

        if (j->manager->event &&
            sd_event_add_time_relative(j->manager->event, &j->linger_source, CLOCK_MONOTONIC, JOB_LINGER_USEC, 0,
                                       on_linger, j) >= 0)
                (void) sd_event_source_set_description(j->linger_source, "job-linger");
        prune_final_jobs(j->manager);
        return 0;
}

void job_set_progress(Job *j, uint64_t blocks_done, uint64_t blocks_total, uint64_t bytes_done,
                      uint64_t bytes_total, int64_t current_block) {
        j->blocks_done = blocks_done;
        j->blocks_total = blocks_total;
        j->bytes_done = bytes_done;
        j->bytes_total = bytes_total;
        j->current_block = current_block;
        /* A straight line through what is done so far: crude, but honest about being an estimate. */
        if (j->start_time > 0 && bytes_done > 0 && bytes_total > bytes_done) {
                uint64_t elapsed = monotonic_usec() - j->start_monotonic;
                j->estimated_end = realtime_usec() +
                                   (uint64_t) ((double) elapsed * (double) (bytes_total - bytes_done) / (double) bytes_done);
        } else
                j->estimated_end = 0;
        j->changed |= JOB_CHANGED_PROGRESS;
        job_send_changed(j);
}

double job_progress(const Job *j) {
        if (j->state == JOB_COMPLETED)
                return 1.0;
        if (j->bytes_total > 0)
                return (double) j->bytes_done / (double) j->bytes_total;
        if (j->blocks_total > 0)
                return (double) j->blocks_done / (double) j->blocks_total;
        return 0.0;
}

int job_cancel(Job *j) {
        if (job_state_is_final(j->state))
                return -EALREADY;
        if (j->state == JOB_QUEUED)
                return job_finish(j, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED,
                                  "Cancelled before it started; nothing was changed.");
        if (!j->engine || !j->engine->cancel)
                return job_finish(j, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Cancelled.");
        return j->engine->cancel(j);
}
