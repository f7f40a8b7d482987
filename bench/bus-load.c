/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-load — N concurrent D-Bus clients reading hotplugd's node properties in a loop; call latency. */

/*
 * Each client is a thread with its own sd-bus connection (so N clients are N bus peers, as N
 * orchestration agents would be) calling org.freedesktop.DBus.Properties.GetAll on the Node
 * interface of node (k mod nodes) back to back. The latency of every call is taken in-process
 * around sd_bus_call() with CLOCK_MONOTONIC: no process start-up is measured, only the bus round
 * trip and the daemon's answer (including the time the call waits while the daemon's loop is busy
 * with an event burst).
 *
 * Runs for --duration seconds, or until SIGTERM/SIGINT. Prints "ready" on stderr once every
 * client is connected and has answered one call (those warm-up calls are not counted), then at
 * the end one JSON object on stdout: calls, errors, p50/p90/p99/p99.9/max in microseconds,
 * calls per second. --slow-us N logs each call slower than N us (send time, latency) to stderr.
 *
 *   bus-load --address unix:path=/tmp/x/bus [--clients 16] [--nodes 8] [--duration 5]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "hotplug-bus.h"

typedef struct Client {
        pthread_t thread;
        unsigned id;
        uint32_t *lat_us;       /* one entry per timed call */
        size_t n, allocated;
        uint64_t errors;
        int setup_error;
        char first_error[256];
} Client;

static const char *arg_address;
static unsigned arg_clients = 16;
static unsigned arg_nodes = 8;
static double arg_duration;     /* 0: until a signal */
static unsigned arg_slow_us;    /* > 0: log calls slower than this to stderr */
static uint64_t t_origin;

static atomic_bool stop;
static atomic_uint ready;

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int get_all(sd_bus *bus, const char *path, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, HOTPLUG_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", error,
                               &reply, "s", HOTPLUG_NODE_INTERFACE);
        sd_bus_message_unref(reply);
        return r;
}

static void *client_run(void *userdata) {
        Client *c = userdata;
        sd_bus *bus = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char path[HOTPLUG_PATH_MAX];
        unsigned k = c->id;
        int r;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, arg_address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r >= 0)
                r = get_all(bus, hotplug_node_path(k % arg_nodes, path), &error);
        if (r < 0) {
                c->setup_error = r;
                snprintf(c->first_error, sizeof(c->first_error), "%s", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                atomic_fetch_add(&ready, 1);
                sd_bus_flush_close_unref(bus);
                return NULL;
        }
        atomic_fetch_add(&ready, 1);
        while (atomic_load(&ready) < arg_clients && !atomic_load(&stop))
                usleep(1000);

        while (!atomic_load(&stop)) {
                uint64_t t0, t1;

                hotplug_node_path(k++ % arg_nodes, path);
                t0 = now_ns();
                r = get_all(bus, path, &error);
                t1 = now_ns();
                if (r < 0) {
                        if (c->errors++ == 0)
                                snprintf(c->first_error, sizeof(c->first_error), "%s", error.message ?: strerror(-r));
                        sd_bus_error_free(&error);
                        continue;
                }
                if (c->n >= c->allocated) {
                        size_t a = c->allocated ? c->allocated * 2 : 65536;
                        uint32_t *p = realloc(c->lat_us, a * sizeof(uint32_t));
                        if (!p)
                                break;
                        c->lat_us = p;
                        c->allocated = a;
                }
                c->lat_us[c->n++] = (uint32_t) ((t1 - t0 + 500) / 1000);
                if (arg_slow_us > 0 && c->lat_us[c->n - 1] >= arg_slow_us)
                        fprintf(stderr, "slow: client %u, call sent at %.6f s (+%.6f s), answered after %u us\n",
                                c->id, (double) t0 / 1e9, (double) (t0 - t_origin) / 1e9, c->lat_us[c->n - 1]);
        }
        sd_bus_flush_close_unref(bus);
        return NULL;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

static uint32_t percentile(const uint32_t *v, size_t n, double p) {
        size_t i;

        if (n == 0)
                return 0;
        i = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
        return v[i < n ? i : n - 1];
}

static void usage(FILE *f) {
        fprintf(f, "Usage: bus-load --address ADDRESS [--clients N] [--nodes N] [--duration SECONDS] [--slow-us N]\n"
                   "N threads, each with its own connection, call Properties.GetAll on hotplugd's nodes back to\n"
                   "back; prints latency percentiles (microseconds) as JSON. Runs until SIGTERM/SIGINT without\n"
                   "--duration. --slow-us N logs every call slower than N us to stderr, with its send time\n"
                   "(CLOCK_MONOTONIC, and relative to the start).\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "address", required_argument, NULL, 'a' },
                { "clients", required_argument, NULL, 'c' },
                { "nodes", required_argument, NULL, 'n' },
                { "duration", required_argument, NULL, 'd' },
                { "slow-us", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        Client *clients;
        uint32_t *all;
        size_t total = 0, k = 0;
        uint64_t errors = 0, t_start, t_end;
        const char *first_error = NULL;
        unsigned failed = 0;
        sigset_t mask;
        int c, sig;

        while ((c = getopt_long(argc, argv, "a:c:n:d:s:h", options, NULL)) >= 0)
                switch (c) {
                case 'a':
                        arg_address = optarg;
                        break;
                case 'c':
                        arg_clients = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'n':
                        arg_nodes = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'd':
                        arg_duration = strtod(optarg, NULL);
                        break;
                case 's':
                        arg_slow_us = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (!arg_address)
                arg_address = getenv("DBUS_SYSTEM_BUS_ADDRESS");
        if (!arg_address || arg_clients == 0 || arg_clients > 1024 || arg_nodes == 0) {
                usage(stderr);
                return 2;
        }

        /* Threads inherit the blocked mask; the main thread waits for the signals with sigtimedwait. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);

        t_origin = now_ns();
        clients = calloc(arg_clients, sizeof(Client));
        if (!clients)
                return 1;
        for (unsigned i = 0; i < arg_clients; i++) {
                clients[i].id = i;
                if (pthread_create(&clients[i].thread, NULL, client_run, &clients[i]) != 0) {
                        fprintf(stderr, "bus-load: cannot start thread %u\n", i);
                        return 1;
                }
        }
        while (atomic_load(&ready) < arg_clients)
                usleep(1000);
        for (unsigned i = 0; i < arg_clients; i++)
                if (clients[i].setup_error < 0) {
                        fprintf(stderr, "bus-load: client %u failed to start: %s\n", i, clients[i].first_error);
                        failed++;
                }
        if (failed > 0) {
                atomic_store(&stop, true);
                for (unsigned i = 0; i < arg_clients; i++)
                        pthread_join(clients[i].thread, NULL);
                return 1;
        }
        t_start = now_ns();
        fprintf(stderr, "ready\n");
        fflush(stderr);

        if (arg_duration > 0) {
                struct timespec ts = { (time_t) arg_duration,
                                       (long) ((arg_duration - (double) (time_t) arg_duration) * 1e9) };
                sig = sigtimedwait(&mask, NULL, &ts);
        } else
                sig = sigwaitinfo(&mask, NULL);
        (void) sig;
        atomic_store(&stop, true);
        for (unsigned i = 0; i < arg_clients; i++)
                pthread_join(clients[i].thread, NULL);
        t_end = now_ns();

        for (unsigned i = 0; i < arg_clients; i++) {
                total += clients[i].n;
                errors += clients[i].errors;
                if (!first_error && clients[i].errors)
                        first_error = clients[i].first_error;
        }
        all = malloc((total ? total : 1) * sizeof(uint32_t));
        if (!all)
                return 1;
        for (unsigned i = 0; i < arg_clients; i++) {
                memcpy(all + k, clients[i].lat_us, clients[i].n * sizeof(uint32_t));
                k += clients[i].n;
                free(clients[i].lat_us);
        }
        qsort(all, total, sizeof(uint32_t), cmp_u32);
        printf("{\"clients\": %u, \"nodes\": %u, \"seconds\": %.3f, \"calls\": %zu, \"errors\": %" PRIu64
               ", \"calls_per_s\": %.0f, \"p50_us\": %u, \"p90_us\": %u, \"p99_us\": %u, \"p999_us\": %u"
               ", \"max_us\": %u, \"first_error\": ",
               arg_clients, arg_nodes, (double) (t_end - t_start) / 1e9, total, errors,
               (double) total / ((double) (t_end - t_start) / 1e9), percentile(all, total, 50),
               percentile(all, total, 90), percentile(all, total, 99), percentile(all, total, 99.9),
               total ? all[total - 1] : 0);
        if (first_error) {
                putchar('"');
                for (const char *p = first_error; *p; p++)
                        if (*p == '"' || *p == '\\')
                                printf("\\%c", *p);
                        else if ((unsigned char) *p >= 0x20)
                                putchar(*p);
                putchar('"');
        } else
                fputs("null", stdout);
        puts("}");
        free(all);
        free(clients);
        return 0;
}
