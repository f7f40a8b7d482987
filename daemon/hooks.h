/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hooks.h — operator hooks around a retire: /etc/hotplugd/hooks.d/<executables>. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

typedef struct HookRun HookRun;

/* result: 0 every hook succeeded (or there were none); > 0 a hook vetoed (exit code), with
 * its first line of output as the reason; < 0 a hook could not be run (negative errno) or
 * was refused because of its ownership or mode. */
typedef void (*HooksDone)(HookRun *run, int result, const char *hook, const char *reason, void *userdata);

typedef struct HookEnvironment {
        const char *phase;      /* "pre-drain", "success", "failure" */
        int node;
        unsigned job_id;
        const char *result;     /* the job's result sentence, for success/failure; or NULL */
} HookEnvironment;

/* Runs the hooks in <root>/etc/hotplugd/hooks.d in lexical order, one at a time, each under
 * timeout_usec; for "pre-drain" the first failure stops the run (a veto). Only regular
 * executables owned by root and not writable by group or others, in a directory with the same
 * properties, are run; anything else fails the run with -EPERM: a hook someone else could have
 * written is never executed as root. done is called from the event loop (also when there are
 * no hooks). */
int hooks_run(sd_event *event, const char *root, const HookEnvironment *env, uint64_t timeout_usec,
              HooksDone done, void *userdata, HookRun **ret);
/* Kills a running hook; done is not called. */
HookRun *hook_run_free(HookRun *run);
DEFINE_TRIVIAL_CLEANUP_FUNC(HookRun *, hook_run_free);
