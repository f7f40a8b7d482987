/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-job.c — the job state machine, cancellation, progress and the lingering of final jobs. */
#include "hotplug-bus.h"
#include "job.h"
#include "log.h"
#include "manager.h"
#include "tests.h"

static Manager *manager_for_jobs(void) {
        Manager *m = calloc(1, sizeof(Manager));

        ASSERT(m);
        ASSERT(sd_event_new(&m->event) >= 0);
        return m;
}

static void manager_for_jobs_free(Manager *m) {
        manager_free_jobs(m);
        sd_event_unref(m->event);
        free(m);
}

static void test_transitions(void) {
        static const struct {
                JobState from, to;
                bool ok;
        } table[] = {
                { JOB_QUEUED, JOB_RUNNING, true },         { JOB_QUEUED, JOB_FAILED, true },
                { JOB_QUEUED, JOB_CANCELLED, true },       { JOB_QUEUED, JOB_COMPLETED, false },
                { JOB_QUEUED, JOB_ROLLING_BACK, false },   { JOB_RUNNING, JOB_ROLLING_BACK, true },
                { JOB_RUNNING, JOB_COMPLETED, true },      { JOB_RUNNING, JOB_FAILED, true },
                { JOB_RUNNING, JOB_CANCELLED, true },      { JOB_RUNNING, JOB_QUEUED, false },
                { JOB_ROLLING_BACK, JOB_FAILED, true },    { JOB_ROLLING_BACK, JOB_CANCELLED, true },
                { JOB_ROLLING_BACK, JOB_COMPLETED, false },{ JOB_COMPLETED, JOB_FAILED, false },
                { JOB_FAILED, JOB_RUNNING, false },        { JOB_CANCELLED, JOB_QUEUED, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                ASSERT_EQ(job_state_transition_ok(table[i].from, table[i].to), table[i].ok);
        for (JobState s = 0; s < _JOB_STATE_MAX; s++) {
                ASSERT_EQ(job_state_from_string(job_state_to_string(s)), s);
                ASSERT_EQ(job_state_is_final(s), s == JOB_COMPLETED || s == JOB_FAILED || s == JOB_CANCELLED);
        }
        ASSERT_STREQ(job_state_to_string(JOB_ROLLING_BACK), "rolling-back");
        ASSERT_EQ(job_state_from_string("bogus"), _JOB_STATE_INVALID);
        ASSERT_STREQ(job_kind_to_string(JOB_RETIRE_NODE), "retire-node");
        ASSERT_EQ(job_kind_from_string("retire-node"), JOB_RETIRE_NODE);
}

static int n_started;

static int start_and_run(Job *j) {
        n_started++;
        return job_set_state(j, JOB_RUNNING);
}

static int n_cancel_asked;

static int cancel_later(Job *j) {
        n_cancel_asked++;
        return job_set_state(j, JOB_ROLLING_BACK);
}

static const JobEngine engine = { .start = start_and_run, .cancel = cancel_later };

static void test_lifecycle(void) {
        Manager *m = manager_for_jobs();
        Job *a, *b;

        ASSERT(job_new(m, JOB_RETIRE_NODE, 3, 0, &engine, &a) >= 0);
        ASSERT(job_new(m, JOB_RETIRE_NODE, 4, 0, &engine, &b) >= 0);
        ASSERT_EQ(a->id, 1);
        ASSERT_EQ(b->id, 2);
        ASSERT_EQ(a->state, JOB_QUEUED);
        ASSERT(manager_find_job(m, 2) == b);
        ASSERT(manager_find_node_job(m, 3) == a);
        ASSERT_STREQ(a->result, "");

        /* A queued job is cancelled at once, without its engine. */
        ASSERT(job_cancel(b) >= 0);
        ASSERT_EQ(b->state, JOB_CANCELLED);
        ASSERT_STREQ(b->error, HOTPLUG_ERROR_CANCELLED);
        ASSERT(strstr(b->result, "nothing was changed"));
        ASSERT_EQ(job_cancel(b), -EALREADY);
        ASSERT(!manager_find_node_job(m, 4));

        /* The loop starts the other one; cancelling a running job asks its engine. */
        ASSERT(sd_event_run(m->event, 0) >= 0);
        ASSERT_EQ(n_started, 1);
        ASSERT_EQ(a->state, JOB_RUNNING);
        ASSERT(a->start_time > 0);
        job_set_progress(a, 1, 4, 256 << 20, 1024 << 20, 12);
        ASSERT(job_progress(a) == 0.25);
        ASSERT_EQ(a->current_block, 12);
        ASSERT(a->estimated_end >= a->start_time);
        ASSERT(job_cancel(a) >= 0);
        ASSERT_EQ(n_cancel_asked, 1);
        ASSERT_EQ(a->state, JOB_ROLLING_BACK);
        ASSERT_EQ(job_set_state(a, JOB_COMPLETED), -EINVAL);
        ASSERT_EQ(job_finish(a, JOB_RUNNING, NULL, "no"), -EINVAL);
        ASSERT(job_finish(a, JOB_CANCELLED, HOTPLUG_ERROR_CANCELLED, "Rolled back %d blocks.", 1) >= 0);
        ASSERT_STREQ(a->result, "Rolled back 1 blocks.");
        ASSERT_EQ(a->current_block, -1);
        ASSERT(a->estimated_end == 0);
        manager_for_jobs_free(m);
}

static void test_linger_limit(void) {
        Manager *m = manager_for_jobs();

        for (int i = 0; i < 40; i++) {
                Job *j;

                ASSERT(job_new(m, JOB_RETIRE_NODE, i, 0, NULL, &j) >= 0);
                ASSERT(job_finish(j, JOB_FAILED, HOTPLUG_ERROR_FAILED, "job %d", i) >= 0);
        }
        /* The oldest final jobs go first, 32 stay. */
        ASSERT_EQ(m->n_jobs, 32);
        ASSERT(!manager_find_job(m, 8));
        ASSERT(manager_find_job(m, 9));
        ASSERT(manager_find_job(m, 40));
        manager_for_jobs_free(m);
}

int main(void) {
        log_set_max_level(LOG_ERR);
        RUN(test_transitions);
        RUN(test_lifecycle);
        RUN(test_linger_limit);
        return 0;
}
