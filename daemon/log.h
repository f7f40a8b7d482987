/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log.h — logging to the journal with structured fields, or to stderr outside systemd. */
#pragma once

#include <stdint.h>
#include <syslog.h>

#include "util.h"

/* MESSAGE_ID= values, one per event kind, so journalctl MESSAGE_ID=… finds them. */
#define HOTPLUGD_MESSAGE_BLOCK_ADDED    "2794bb4689c1444f88fbf56fab749c89"
#define HOTPLUGD_MESSAGE_BLOCK_ONLINED  "9cf9c61a5265460493f4d9c4918af5be"
#define HOTPLUGD_MESSAGE_BLOCK_OFFLINED "ad66b37a248848ff85eb24b50cc80970"
#define HOTPLUGD_MESSAGE_BLOCK_REMOVED  "96b851d80a73483d97550248d5648c14"
#define HOTPLUGD_MESSAGE_NODE_ONLINE    "3d94be1eedf94a9aba23e159cf739aa8"
#define HOTPLUGD_MESSAGE_NODE_OFFLINE   "f39f0ba6d0a747359e4e4617f9f60068"
#define HOTPLUGD_MESSAGE_CONFLICT       "f70b827750e2478d94cd892bcc4e433d"
#define HOTPLUGD_MESSAGE_ZONE_MISMATCH  "0972f2cee9054a1f9ed8736247f09d4c"
#define HOTPLUGD_MESSAGE_KERNEL_ONLINE  "5f38fa75d60a4f1a9700ed17100f223f"

/* Structured fields of one log record; node/block < 0 mean "not about a node/block". */
typedef struct LogFields {
        const char *message_id;
        int node;
        int64_t block;
        const char *extra; /* one more "KEY=value" field, or NULL */
} LogFields;

#define LOG_FIELDS(...) (&(const LogFields){ .node = -1, .block = -1, __VA_ARGS__ })

typedef enum LogTarget {
        LOG_TARGET_AUTO,    /* journal if stderr is connected to it, else stderr */
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
} LogTarget;

void log_setup(LogTarget target);
void log_set_max_level(int level);
int log_get_max_level(void);
int log_level_from_string(const char *s);

/* Logs and returns -abs(error) (or 0 when error is 0), so callers can "return log_…_errno(r, …)". */
int log_internal(int level, int error, const LogFields *fields, const char *file, int line,
                 const char *func, const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...) \
        log_internal(level, error, NULL, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* A structured record: log_struct(LOG_INFO, LOG_FIELDS(.message_id = …, .node = 2), "fmt", …). */
#define log_struct(level, fields, ...) \
        (void) log_internal(level, 0, fields, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_struct_errno(level, error, fields, ...) \
        log_internal(level, error, fields, __FILE__, __LINE__, __func__, __VA_ARGS__)
