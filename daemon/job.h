/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* job.h — long-running operations (retiring a node) as objects with a state machine and progress. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

struct Manager;

typedef enum JobKind {
        JOB_RETIRE_NODE,
        _JOB_KIND_MAX,
        _JOB_KIND_INVALID = -EINVAL,
} JobKind;

/* queued → running → completed
 *    │        ├────→ rolling-back → failed | cancelled
 *    │        └────→ failed | cancelled
 *    └──────────────→ failed | cancelled
 * The last three are final: a final job lingers a while so clients can read its result, then
 * it is removed (JobRemoved). */
typedef enum JobState {
        JOB_QUEUED,
        JOB_RUNNING,
        JOB_ROLLING_BACK,
        JOB_COMPLETED,
        JOB_FAILED,
        JOB_CANCELLED,
        _JOB_STATE_MAX,
        _JOB_STATE_INVALID = -EINVAL,
} JobState;

/* What changed since the last PropertiesChanged (job-dbus.c batches them). */
typedef enum JobChange {
        JOB_CHANGED_STATE = 1u << 0,    /* State, Result, Error, EstimatedEnd */
        JOB_CHANGED_PROGRESS = 1u << 1, /* Progress, Blocks*, Bytes*, CurrentBlock, EstimatedEnd */
        JOB_CHANGED_TIMES = 1u << 2,    /* StartTime */
} JobChange;

typedef struct Job Job;

/* The engine behind a job kind. start() runs on the loop when the job leaves the queue and must
 * eventually end the job with job_finish(); cancel() is asked to stop and may do so later
 * (through rolling-back). Both return 0 or negative errno (the job then fails with it). */
typedef struct JobEngine {
        int (*start)(Job *j);
        int (*cancel)(Job *j);
        void (*free_data)(Job *j);
} JobEngine;

struct Job {
        struct Manager *manager;
        unsigned id;
        JobKind kind;
        int node;
        uint64_t flags;
        JobState state;

        uint64_t blocks_done, blocks_total;
        uint64_t bytes_done, bytes_total;
        int64_t current_block;          /* -1: none */
        uint64_t start_time;            /* CLOCK_REALTIME µs, 0 until it runs */
        uint64_t start_monotonic;
        uint64_t estimated_end;         /* CLOCK_REALTIME µs, 0 if unknown */
        char *result;                   /* one human sentence once final ("" before) */
        char *error;                    /* D-Bus error name once failed/cancelled, else NULL */

        const JobEngine *engine;
        void *engine_data;

        sd_event_source *start_source;  /* leaves the queue on the next loop iteration */
        sd_event_source *linger_source; /* removes the final job */
        sd_event_source *notify_source; /* rate-limits progress signals */
        unsigned changed;               /* JobChange mask not yet emitted */
        uint64_t last_progress_emit;
};

const char *job_kind_to_string(JobKind k);
JobKind job_kind_from_string(const char *s);
const char *job_state_to_string(JobState s);
JobState job_state_from_string(const char *s);
bool job_state_is_final(JobState s);
/* Pure: is "from → to" an edge of the state machine above? */
bool job_state_transition_ok(JobState from, JobState to);

/* Creates a queued job with the next id, adds it to the manager and announces it (JobNew);
 * the engine's start() runs from the event loop. */
int job_new(struct Manager *m, JobKind kind, int node, uint64_t flags, const JobEngine *engine, Job **ret);
Job *job_free(Job *j);

/* State changes. Return -EINVAL for transitions the state machine does not have. */
int job_set_state(Job *j, JobState state);
/* Ends the job (completed, failed or cancelled) with a D-Bus error name (NULL on success) and a
 * human sentence; schedules its removal. */
int job_finish(Job *j, JobState state, const char *error, const char *format, ...) _printf_(4, 5);
/* Progress from the engine; EstimatedEnd is derived from the rate so far. */
void job_set_progress(Job *j, uint64_t blocks_done, uint64_t blocks_total, uint64_t bytes_done,
                      uint64_t bytes_total, int64_t current_block);
double job_progress(const Job *j);
/* Asks the job to stop: queued jobs end at once, running ones through their engine. */
int job_cancel(Job *j);

/* The manager's table. */
Job *manager_find_job(struct Manager *m, unsigned id);
/* The job that is not final and works on this node, if any. */
Job *manager_find_node_job(struct Manager *m, int node);
void manager_free_jobs(struct Manager *m);
