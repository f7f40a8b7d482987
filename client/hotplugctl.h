/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl.h — what the verb files share: parsed options, exit codes, bus and output helpers. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "hotplug-bus.h"

/* Exit codes (documented in hotplugctl(1)). */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_DENIED 4
#define EXIT_PARTIAL 64         /* some blocks changed, some did not (like chmem) */

typedef enum JsonMode {
        JSON_OFF,
        JSON_SHORT,
        JSON_PRETTY,
} JsonMode;

/* Parsed command line: the only globals. */
extern JsonMode arg_json;
extern bool arg_no_pager;
extern bool arg_no_legend;
extern bool arg_ask_password;
extern bool arg_quiet;
extern bool arg_verbose;
extern bool arg_all;
extern bool arg_no_block;
extern bool arg_dry_run;
extern bool arg_no_eject;
extern bool arg_offline_cpus;
extern int arg_node;                    /* --node, -1 if not given */
extern const char *arg_zone;            /* --zone */

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)
static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

typedef int (*VerbFunction)(sd_bus *bus, int argc, char **argv);

/* Verbs, one file per group. */
int verb_status(sd_bus *bus, int argc, char **argv);
int verb_list_nodes(sd_bus *bus, int argc, char **argv);
int verb_show_node(sd_bus *bus, int argc, char **argv);
int verb_list_blocks(sd_bus *bus, int argc, char **argv);
int verb_online_blocks(sd_bus *bus, int argc, char **argv);
int verb_offline_blocks(sd_bus *bus, int argc, char **argv);
int verb_set_policy(sd_bus *bus, int argc, char **argv);
int verb_quarantine(sd_bus *bus, int argc, char **argv);
int verb_plan_retire(sd_bus *bus, int argc, char **argv);
int verb_retire_node(sd_bus *bus, int argc, char **argv);
int verb_jobs(sd_bus *bus, int argc, char **argv);
int verb_cancel(sd_bus *bus, int argc, char **argv);
int verb_monitor(sd_bus *bus, int argc, char **argv);
int verb_reload(sd_bus *bus, int argc, char **argv);

/* ---- output.c ---- */

/* Prints a failed call the way a person would say it (the D-Bus error name only with
 * --verbose) and returns the exit code for it. what: "Failed to …" context, may be NULL. */
int print_bus_error(const sd_bus_error *error, int r, const char *what);
/* Prints "Node N does not exist (nodes: …)." after asking the daemon which nodes exist. */
int print_no_such_node(sd_bus *bus, unsigned node);
int print_error(int code, const char *format, ...) _printf_(2, 3);

/* A table: add cells row by row, print once (widths from the content). */
typedef struct Table Table;
Table *table_new(const char *const *headers, size_t n_columns);
/* The column is right-aligned (numbers). */
void table_set_right(Table *t, size_t column);
int table_add(Table *t, const char *cell);
int table_addf(Table *t, const char *format, ...) _printf_(2, 3);
void table_print(Table *t, FILE *f);
Table *table_free(Table *t);
static inline void table_freep(Table **t) {
        if (*t)
                *t = table_free(*t);
}

/* Streaming JSON (short or pretty), enough for what hotplugctl prints. */
typedef struct Json {
        FILE *f;
        bool pretty;
        int depth;
        bool first[32];
        bool after_key;
} Json;
void json_init(Json *j, FILE *f);
void json_begin_object(Json *j);
void json_end_object(Json *j);
void json_begin_array(Json *j);
void json_end_array(Json *j);
void json_key(Json *j, const char *key);
void json_string(Json *j, const char *s);
void json_uint(Json *j, uint64_t v);
void json_int(Json *j, int64_t v);
void json_double(Json *j, double v);
void json_bool(Json *j, bool b);
void json_null(Json *j);
/* Ends a top-level value with a newline. */
void json_finish(Json *j);
/* Any D-Bus value (the next complete type of m) as JSON. */
int json_bus_value(Json *j, sd_bus_message *m);

/* "128M", "1.5G": binary units, like lsmem. */
const char *format_bytes(char *buf, size_t size, uint64_t bytes);
/* "0-3,7". */
const char *format_id_list(char *buf, size_t size, const uint32_t *ids, size_t n);
const char *yes_no(bool b);

void pager_open(void);
void pager_close(void);

/* Progress line for a job on a TTY (\r-redrawn), or plain lines otherwise. */
void progress_show(const char *state, double progress, uint64_t blocks_done, uint64_t blocks_total,
                   uint64_t bytes_done, uint64_t bytes_total, uint64_t estimated_end);
void progress_clear(void);

/* polkit's text agent while we wait for a change (only with a TTY and without --no-ask-password). */
void polkit_agent_open(void);
void polkit_agent_close(void);

/* ---- bus helpers (hotplugctl.c) ---- */

/* Calls a Manager method; on failure prints the error and returns the exit code (> 0). */
int call_manager(sd_bus *bus, const char *method, sd_bus_message **reply, uint64_t timeout_usec,
                 const char *types, ...);
/* A Manager or Node property. */
int get_property_u64(sd_bus *bus, const char *path, const char *interface, const char *name, char type, uint64_t *ret);
int get_property_string(sd_bus *bus, const char *path, const char *interface, const char *name, char **ret);
/* Parses a non-negative decimal id; returns 0 or -EINVAL. */
int parse_uint(const char *s, unsigned *ret);

/* GetAll into typed fields: signature "s" (char **, strdup'ed), "t" (uint64_t *), "u" (uint32_t *),
 * "b" (int *), "d" (double *), "x" (int64_t *); or a parse callback for containers, called with the
 * message inside the variant. Unknown properties are skipped. */
typedef struct PropertyMap {
        const char *name;
        const char *signature;
        void *ptr;
        int (*parse)(sd_bus_message *m, void *ptr);
} PropertyMap;
int get_all_properties(sd_bus *bus, const char *path, const char *interface, const PropertyMap *map);
/* GetAll printed as one JSON object (property name → value). */
int print_all_properties_json(sd_bus *bus, const char *path, const char *interface);
/* The error of a call to an object path that may not exist (UnknownObject → NoSuchNode text). */
