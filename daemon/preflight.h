/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* preflight.h — can this node be retired? Findings from the model, before anything is touched. */
#pragma once

#include <stdint.h>

#include "job.h"
#include "manager.h"

typedef enum Verdict {
        VERDICT_OK,
        VERDICT_WARNING,
        VERDICT_BLOCKER,
        _VERDICT_MAX,
} Verdict;

typedef struct Finding {
        Verdict verdict;
        const char *code;       /* stable, machine-readable: "has-cpus", "kernel-zone", ... */
        char *message;          /* one sentence for people */
} Finding;

typedef struct Preflight {
        Finding *findings;
        size_t n_findings;
        unsigned n_blockers, n_warnings;
        uint64_t bytes_to_migrate;      /* memory in use on the node (meminfo, else managed pages) */
        uint64_t bytes_available;       /* free memory on the other nodes with memory */
} Preflight;

/* Fills ret with the findings for node; -ENODEV if the node does not exist, -ENOMEM. Reads the
 * nodes' meminfo (free memory is not part of the model); everything else comes from the model. */
int preflight_node(Manager *m, int node, Preflight *ret);
void preflight_done(Preflight *p);
const char *verdict_to_string(Verdict v);
/* The first blocker, or NULL. */
const Finding *preflight_first_blocker(const Preflight *p);

/* The D-Bus error name a blocker's code stands for (NodeHasCPUs, InsufficientMemory, Busy, else
 * NotRemovable). */
const char *preflight_error_for(const char *code);
