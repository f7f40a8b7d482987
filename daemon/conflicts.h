/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* conflicts.h — other agents that online memory: the kernel's auto-online, boot options, udev rules. */
#pragma once

#include "sysfs.h"

typedef enum ConflictKind {
        CONFLICT_KERNEL_AUTO_ONLINE,    /* auto_online_blocks is not "offline" */
        CONFLICT_CMDLINE,               /* memhp_default_state= on the kernel command line */
        CONFLICT_UDEV_RULE,             /* a udev rule writes the state of memory blocks */
        _CONFLICT_KIND_MAX,
} ConflictKind;

typedef struct Conflict {
        ConflictKind kind;
        char *source;           /* file, file:line */
        char *detail;           /* the value or the rule text */
} Conflict;

typedef struct Conflicts {
        Conflict *items;
        size_t n;
} Conflicts;

int conflicts_detect(SysRoot *root, Conflicts *ret);
void conflicts_done(Conflicts *c);
/* Removes (and frees) every conflict of one kind. */
void conflicts_drop_kind(Conflicts *c, ConflictKind kind);
const char *conflict_kind_to_string(ConflictKind k);

/* Pure helper, exposed for tests and fuzzing: does this udev rules text online memory blocks?
 * Returns the 1-based line of the first state assignment in a memory rule, 0 if none. */
unsigned udev_rules_write_memory_state(const char *text);
