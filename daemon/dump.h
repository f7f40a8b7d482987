/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dump.h — the model as JSON: --dump-model, the SIGUSR2 live dump, and the benchmark's cold scan. */
#pragma once

#include <stdio.h>

#include "config.h"
#include "conflicts.h"
#include "model.h"
#include "policy.h"

typedef struct DumpInput {
        const char *root;
        const char *auto_online_blocks;         /* as read, or NULL */
        const Model *model;
        const Config *config;
        const Conflicts *conflicts;
        const PolicyEnvironment *env;
} DumpInput;

int dump_model_json(FILE *f, const DumpInput *in);
/* Writes the dump to dir/name atomically (temp file, fsync, rename). */
int dump_model_to_file(const char *dir, const char *name, const DumpInput *in);
