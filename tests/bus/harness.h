/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* harness.h — the daemon library on a private dbus-daemon, a fake polkit, and a client. */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <systemd/sd-bus.h>

#include "../unit/tests.h"
#include "uevent.h"

#define ASSERT_OK(expr)                                                                                \
        do {                                                                                           \
                int _r = (expr);                                                                       \
                if (_r < 0) {                                                                          \
                        fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, strerror(-_r)); \
                        exit(EXIT_FAILURE);                                                            \
                }                                                                                      \
        } while (0)

typedef struct FakePolkit {
        pthread_mutex_t lock;
        char allowed[16][64];
        size_t n_allowed;
        bool challenge;                 /* answer "not authorized, but a password would do" */
        bool hang;                      /* keep calls unanswered until release */
        bool release;
        sd_bus_message *hung[16];
        size_t n_hung;
        unsigned n_calls;
        uint32_t last_flags;
        char last_action[64];
        char last_detail_node[16];
        bool stop;
        bool ready;
} FakePolkit;

typedef struct Harness {
        char dir[128];
        char root[160];
        pid_t bus_pid;
        pthread_t manager_thread, polkit_thread;
        int command_pipe[2];
        int ready_pipe[2];
        sd_bus *bus;                    /* the test's client connection (root) */
        FakePolkit pk;
        /* Signals the client saw (collect_signals()). */
        sd_bus_message *signals[512];
        size_t n_signals;
        bool manager_stopped;
        struct Manager *manager;        /* touched only on the manager's thread */
} Harness;

/* The default tree (see harness.c); spec_json overrides it. */
void harness_start(Harness *h, const char *spec_json);
void harness_stop(Harness *h);
/* Stops the daemon only (its shutdown answers pending calls); harness_stop() does the rest. */
void harness_stop_manager(Harness *h);
/* A retire job on node that runs until cancelled; returns its id. */
unsigned harness_hanging_job(Harness *h, unsigned node);

/* Runs Python with tests/ on sys.path and `gentree` imported, ROOT as a variable. */
void harness_py(Harness *h, const char *code);
/* Path inside the tree: "sys/devices/system/memory/memory40/state". */
void harness_read(Harness *h, const char *rel, char *buf, size_t size);
void harness_write(Harness *h, const char *rel, const char *text);

/* Hands a uevent to manager_handle_uevent() on the manager's thread. */
void harness_uevent(Harness *h, UeventSubsystem subsystem, UeventAction action, uint64_t index);
/* Events for blocks first..first+count-1 (count <= 16), delivered as one burst. */
void harness_uevents(Harness *h, UeventSubsystem subsystem, UeventAction action, uint64_t first, size_t count);

void pk_allow(Harness *h, const char *const *actions); /* NULL-terminated; NULL: deny all */
void pk_set(Harness *h, bool challenge, bool hang);
void pk_release(Harness *h);
unsigned pk_calls(Harness *h);

/* Calls a Manager method; returns the reply, or NULL with *error set. */
sd_bus_message *call(Harness *h, sd_bus_error *error, const char *method, const char *types, ...);
/* Asserts the call failed with this error name; prints the message. */
void expect_error(const sd_bus_error *e, const char *name);

/* Subscribes once to everything hotplugd emits, then collects for ms milliseconds. */
void collect_signals(Harness *h, unsigned ms);
void clear_signals(Harness *h);
/* Signals collected with this member (and path, if not NULL). */
size_t count_signals(Harness *h, const char *member, const char *path);
/* Whether a PropertiesChanged for path names the property. */
bool changed_property(Harness *h, const char *path, const char *property);
