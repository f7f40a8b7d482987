/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* retire.h — retiring a NUMA node: preflight, drain, rollback, eject, verify, crash recovery. */
#pragma once

#include "hotplug-bus.h"
#include "job.h"
#include "manager.h"

/* The job's flags are RetireNode()'s: HOTPLUG_RETIRE_DRY_RUN, _NO_EJECT, _OFFLINE_CPUS. */

/* The engine behind RetireNode(). */
extern const JobEngine retire_engine;

/* Tells running retire jobs that the model changed (blocks removed, node gone): called by the
 * manager at the end of every settle step. */
void retire_model_changed(Manager *m);

/* At start: finds the journals of retires that a crash interrupted and reconciles each with
 * sysfs by OnCrash= (rollback or resume), as a job whose result says it was interrupted. A
 * damaged journal is refused with a message and renamed *.corrupt; nothing acts on it. */
int retire_recover(Manager *m);

/* Pure, for tests: the order in which a node's online blocks are drained — ZONE_MOVABLE first,
 * then the rest; highest address first within each (the tail of a node is the likeliest to be
 * free of long-lived kernel allocations). Returns the number of indexes put into ret (malloc'ed). */
size_t retire_drain_order(const Model *m, int node, uint64_t **ret);

/* Pure, for tests: is this offline failure worth another try? EBUSY (unmovable pages right now),
 * EAGAIN, and the timeout (the write was interrupted) are; EINVAL (holes, several zones or
 * nodes), EPERM and the rest are permanent. */
bool retire_error_is_transient(int error);
/* The wait before try number attempt (1-based) with exponential backoff, capped at 60 s. */
uint64_t retire_backoff_usec(uint64_t first_usec, unsigned attempt);
