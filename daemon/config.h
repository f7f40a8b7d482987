/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config.h — hotplugd.conf and its drop-ins, parsed with inih into a validated, typed struct. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum OnlinePolicy {
        POLICY_OFFLINE,         /* leave new blocks offline */
        POLICY_ONLINE,          /* plain "online": the kernel picks the zone */
        POLICY_ONLINE_KERNEL,
        POLICY_ONLINE_MOVABLE,
        POLICY_AUTO_MOVABLE,    /* movable while MOVABLE:KERNEL of the node stays within MovableRatio */
        POLICY_AUTO,            /* bare metal → online_movable, VM → online */
        _POLICY_MAX,
        POLICY_INHERIT = -1,    /* per-node: use the global policy */
        _POLICY_INVALID = -EINVAL,
} OnlinePolicy;

typedef enum EventSource {
        EVENT_SOURCE_UDEV,
        EVENT_SOURCE_KERNEL,
        _EVENT_SOURCE_MAX,
        _EVENT_SOURCE_INVALID = -EINVAL,
} EventSource;

typedef enum OnCrash {
        ON_CRASH_ROLLBACK,      /* online again what an interrupted retire had offlined */
        ON_CRASH_RESUME,        /* go on with the interrupted retire */
        _ON_CRASH_MAX,
        _ON_CRASH_INVALID = -EINVAL,
} OnCrash;

typedef struct NodeConfig {
        int node;
        OnlinePolicy policy;    /* POLICY_INHERIT if not set */
        unsigned movable_ratio; /* 0 if not set */
} NodeConfig;

typedef struct Config {
        /* [Daemon] */
        EventSource event_source;       /* EventSource=udev|kernel */
        bool take_over;                 /* TakeOver=yes|no */
        size_t receive_buffer_size;     /* ReceiveBufferSize= bytes, K/M/G suffixes */
        int log_level;                  /* LogLevel=, syslog level, -1 unset */

        /* [Online] */
        OnlinePolicy policy;            /* Policy= */
        unsigned movable_ratio;         /* MovableRatio= percent, default 301 */
        bool online_virtio_mem;         /* VirtioMem=online|ignore (default ignore) */
        bool online_dax_kmem;           /* DaxKmem=online|ignore (default ignore) */
        bool kernel_handoff;            /* KernelHandoff= with TakeOver=yes, let the kernel apply a
                                         * uniform policy in-line (default yes) */

        /* [Retire] */
        uint64_t block_timeout_usec;    /* BlockTimeoutSec= one offline write, default 120 s */
        unsigned retries;               /* Retries= per block on EBUSY or timeout, default 5 */
        uint64_t retry_backoff_usec;    /* RetryBackoffSec= first wait, doubling (cap 60 s), default 1 s */
        uint64_t reserve_bytes;         /* Reserve= free memory the other nodes must keep, default 512M */
        bool rollback;                  /* Rollback= online again what a failed drain offlined, default yes */
        OnCrash on_crash;               /* OnCrash=rollback|resume, default rollback */
        bool eject;                     /* Eject= eject the memory devices after the drain, default yes */
        bool offline_cpus;              /* OfflineCPUs= offline the node's CPUs too, default no */
        uint64_t remove_timeout_usec;   /* RemoveTimeoutSec= wait for ejected memory to go, default 60 s */
        uint64_t hook_timeout_usec;     /* HookTimeoutSec= per hook, default 60 s */

        /* [Node N] sections, sorted by node */
        NodeConfig *nodes;
        size_t n_nodes;
} Config;

/* Sets the built-in defaults (what an empty config means). */
void config_init(Config *c);
void config_done(Config *c);

/* Loads <root>/etc/hotplugd/hotplugd.conf (or main_path if not NULL, not prefixed), then the
 * drop-ins hotplugd.conf.d/\*.conf from <root>/etc, <root>/run and <root>/usr/lib: a file name in an
 * earlier directory masks the same name in a later one, and all are applied in lexical order of
 * their file names, later wins. Unknown sections and keys are logged as warnings naming
 * file:line. A bad value fails the whole load with -EINVAL and a message "file:line: …" in
 * *ret_error (malloc'ed); ret is then untouched. Files, drop-in directories and <root>/etc/hotplugd
 * must be owned by root (or the user we run as) and not writable by group or others: otherwise
 * -EPERM, with a message naming the file. */
int config_load(const char *root, const char *main_path, Config *ret, char **ret_error);

/* Same parser on a string (tests, fuzzing); name is used in messages. */
int config_parse_string(const char *name, const char *text, Config *c, char **ret_error);

/* The effective policy/ratio of a node (per-node value, else global). */
OnlinePolicy config_node_policy(const Config *c, int node);
unsigned config_node_movable_ratio(const Config *c, int node);

const char *online_policy_to_string(OnlinePolicy p);
OnlinePolicy online_policy_from_string(const char *s);
const char *event_source_to_string(EventSource s);
const char *on_crash_to_string(OnCrash o);
OnCrash on_crash_from_string(const char *s);
EventSource event_source_from_string(const char *s);
