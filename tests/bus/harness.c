/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* harness.c — a private system bus, the manager on a thread of its own, a polkit stand-in. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "job.h"
#include "manager.h"
#include "manager-dbus.h"
#include "polkit.h"

/* Three nodes: 0 and 1 with CPUs and boot memory, 2 without CPUs holding ACPI DIMMs in Movable
 * (the one that passes the retire preflight). Policy=offline: the daemon writes only on request. */
static const char default_spec[] =
        "{\"block_size\": \"128M\", \"auto_online_blocks\": \"offline\","
        " \"nodes\": [{\"id\": 0, \"cpus\": [0, 1]}, {\"id\": 1, \"cpus\": [2, 3]}, {\"id\": 2, \"cpus\": []}],"
        " \"blocks\": ["
        "  {\"start\": 0, \"count\": 1, \"node\": 0, \"state\": \"online\", \"zone\": \"none\"},"
        "  {\"start\": 1, \"count\": 7, \"node\": 0, \"state\": \"online\", \"zone\": \"DMA32\"},"
        "  {\"start\": 32, \"count\": 8, \"node\": 1, \"state\": \"online\", \"zone\": \"Normal\"},"
        "  {\"start\": 40, \"count\": 4, \"node\": 1, \"state\": \"online\", \"zone\": \"Movable\"},"
        "  {\"start\": 44, \"count\": 4, \"node\": 1, \"state\": \"offline\", \"valid_zones\": \"Movable Normal\"},"
        "  {\"start\": 64, \"count\": 16, \"node\": 2, \"state\": \"online\", \"zone\": \"Movable\", \"owner\": \"acpi\", \"device\": \"PNP0C80:00\"},"
        "  {\"start\": 80, \"count\": 4, \"node\": 2, \"state\": \"offline\", \"valid_zones\": \"Movable\", \"owner\": \"acpi\", \"device\": \"PNP0C80:01\"}"
        " ]}";

typedef struct Command {
        int kind;               /* 0: uevent, 1: stop, 2: a job that runs until cancelled */
        Uevent ev;
} Command;

/* An engine that starts and never ends by itself: something to cancel. */
static int hang_start(Job *j) {
        return job_set_state(j, JOB_RUNNING);
}

static const JobEngine hang_engine = { .start = hang_start };

static const char *source_dir(void) {
        const char *s = getenv("HOTPLUGD_SOURCE_DIR");
        ASSERT(s && "HOTPLUGD_SOURCE_DIR must be set (meson test sets it)");
        return s;
}

static void writef(const char *path, const char *format, ...) _printf_(2, 3);
static void writef(const char *path, const char *format, ...) {
        FILE *f = fopen(path, "we");
        va_list ap;

        ASSERT(f);
        va_start(ap, format);
        vfprintf(f, format, ap);
        va_end(ap);
        ASSERT(fclose(f) == 0);
}

void harness_py(Harness *h, const char *code) {
        char script[PATH_MAX];
        FILE *f;
        pid_t pid;
        int status;

        snprintf(script, sizeof(script), "%s/py.py", h->dir);
        f = fopen(script, "we");
        ASSERT(f);
        fprintf(f, "import sys\nsys.path.insert(0, '%s/tests')\nimport gentree\nROOT = '%s'\n", source_dir(), h->root);
        fputs(code, f);
        fputc('\n', f);
        ASSERT(fclose(f) == 0);
        pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
                execl("/usr/bin/python3", "python3", script, (char *) NULL);
                _exit(127);
        }
        ASSERT(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "python failed (status %d):\n%s\n", status, code);
                exit(EXIT_FAILURE);
        }
}

void harness_read(Harness *h, const char *rel, char *buf, size_t size) {
        char path[PATH_MAX];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "%s/%s", h->root, rel);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        ASSERT(fd >= 0);
        n = read(fd, buf, size - 1);
        ASSERT(n >= 0);
        buf[n] = 0;
        close(fd);
}

void harness_write(Harness *h, const char *rel, const char *text) {
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/%s", h->root, rel);
        writef(path, "%s", text);
}

/* ---- the polkit stand-in ---------------------------------------------------------------- */

static int pk_answer(sd_bus_message *m, FakePolkit *pk) {
        bool allowed = false;

        pthread_mutex_lock(&pk->lock);
        for (size_t i = 0; i < pk->n_allowed; i++)
                allowed = allowed || streq(pk->allowed[i], pk->last_action);
        pthread_mutex_unlock(&pk->lock);
        return sd_bus_reply_method_return(m, "(bba{ss})", allowed, !allowed && pk->challenge, 0);
}

static int pk_check(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        FakePolkit *pk = userdata;
        const char *kind, *action, *key, *value, *cancel;
        uint32_t flags;
        int r;

        r = sd_bus_message_enter_container(m, 'r', "sa{sv}");
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &kind);
        if (r >= 0)
                r = sd_bus_message_skip(m, "a{sv}");
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &action);
        if (r < 0)
                return r;
        pthread_mutex_lock(&pk->lock);
        ASSERT_STREQ(kind, "system-bus-name");
        snprintf(pk->last_action, sizeof(pk->last_action), "%s", action);
        pk->last_detail_node[0] = 0;
        pthread_mutex_unlock(&pk->lock);
        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(m, "{ss}", &key, &value)) > 0)
                if (streq(key, "node"))
                        snprintf(pk->last_detail_node, sizeof(pk->last_detail_node), "%s", value);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0)
                r = sd_bus_message_read(m, "us", &flags, &cancel);
        if (r < 0)
                return r;
        pthread_mutex_lock(&pk->lock);
        pk->n_calls++;
        pk->last_flags = flags;
        if (pk->hang && pk->n_hung < ELEMENTSOF(pk->hung)) {
                pk->hung[pk->n_hung++] = sd_bus_message_ref(m);
                pthread_mutex_unlock(&pk->lock);
                return 1;
        }
        pthread_mutex_unlock(&pk->lock);
        return pk_answer(m, pk);
}

static const sd_bus_vtable pk_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("CheckAuthorization", "(sa{sv})sa{ss}us", "(bba{ss})", pk_check, 0),
        SD_BUS_VTABLE_END,
};

static void *polkit_main(void *userdata) {
        Harness *h = userdata;
        FakePolkit *pk = &h->pk;
        sd_bus *bus = NULL;

        ASSERT_OK(sd_bus_open_system(&bus));
        ASSERT_OK(sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", pk_vtable, pk));
        ASSERT_OK(sd_bus_request_name(bus, "org.freedesktop.PolicyKit1", 0));
        pthread_mutex_lock(&pk->lock);
        pk->ready = true;
        pthread_mutex_unlock(&pk->lock);
        for (;;) {
                bool stop, release;

                while (sd_bus_process(bus, NULL) > 0)
                        ;
                pthread_mutex_lock(&pk->lock);
                stop = pk->stop;
                release = pk->release;
                pk->release = false;
                pthread_mutex_unlock(&pk->lock);
                if (release)
                        for (size_t i = 0; i < pk->n_hung; i++) {
                                (void) pk_answer(pk->hung[i], pk);
                                pk->hung[i] = sd_bus_message_unref(pk->hung[i]);
                        }
                if (release)
                        pk->n_hung = 0;
                if (stop)
                        break;
                (void) sd_bus_wait(bus, 10 * 1000);
        }
        for (size_t i = 0; i < pk->n_hung; i++)
                sd_bus_message_unref(pk->hung[i]);
        sd_bus_flush_close_unref(bus);
        return NULL;
}

void pk_allow(Harness *h, const char *const *actions) {
        pthread_mutex_lock(&h->pk.lock);
        h->pk.n_allowed = 0;
        for (size_t i = 0; actions && actions[i] && i < ELEMENTSOF(h->pk.allowed); i++)
                snprintf(h->pk.allowed[h->pk.n_allowed++], sizeof(h->pk.allowed[0]), "%s", actions[i]);
        pthread_mutex_unlock(&h->pk.lock);
}

void pk_set(Harness *h, bool challenge, bool hang) {
        pthread_mutex_lock(&h->pk.lock);
        h->pk.challenge = challenge;
        h->pk.hang = hang;
        pthread_mutex_unlock(&h->pk.lock);
}

void pk_release(Harness *h) {
        pthread_mutex_lock(&h->pk.lock);
        h->pk.hang = false;
        h->pk.release = true;
        pthread_mutex_unlock(&h->pk.lock);
}

unsigned pk_calls(Harness *h) {
        unsigned n;

        pthread_mutex_lock(&h->pk.lock);
        n = h->pk.n_calls;
        pthread_mutex_unlock(&h->pk.lock);
        return n;
}

/* ---- the manager's thread --------------------------------------------------------------- */

static int on_command(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Harness *h = userdata;
        Manager *m = h->manager;
        Command c;

        /* Everything queued now is one burst, like a netlink read. */
        while (read(fd, &c, sizeof(c)) == (ssize_t) sizeof(c)) {
                if (c.kind == 1)
                        return sd_event_exit(m->event, 0);
                if (c.kind == 2) {
                        Job *j = NULL;
                        int r = job_new(m, JOB_RETIRE_NODE, (int) c.ev.index, 0, &hang_engine, &j);
                        int id = r < 0 ? r : (int) j->id;

                        ASSERT(write(h->ready_pipe[1], &id, sizeof(id)) == sizeof(id));
                        continue;
                }
                manager_handle_uevent(m, &c.ev);
        }
        return 0;
}

static void *manager_main(void *userdata) {
        Harness *h = userdata;
        char state[sizeof(h->dir) + 8];
        ManagerOptions opts = { .root = h->root, .runtime_dir = h->dir, .state_dir = state };
        Manager *m = NULL;
        int r;

        /* Never the host's /var/lib/hotplugd. */
        snprintf(state, sizeof(state), "%s/state", h->dir);
        r = manager_new(&opts, &m);
        if (r >= 0)
                r = manager_start(m);
        if (r >= 0) {
                /* The test runs as root: ask polkit anyway, that is what is under test. */
                polkit_registry_set_always_query(manager_bus(m)->polkit, true);
                h->manager = m;
                r = sd_event_add_io(m->event, NULL, h->command_pipe[0], EPOLLIN, on_command, h);
        }
        ASSERT(write(h->ready_pipe[1], &r, sizeof(r)) == sizeof(r));
        if (r >= 0)
                r = sd_event_loop(m->event);
        manager_free(m);
        return NULL;
}

static uint64_t harness_seqnum = 1000;

void harness_uevent(Harness *h, UeventSubsystem subsystem, UeventAction action, uint64_t index) {
        harness_uevents(h, subsystem, action, index, 1);
}

void harness_uevents(Harness *h, UeventSubsystem subsystem, UeventAction action, uint64_t first, size_t count) {
        Command c[16];

        ASSERT(count > 0 && count <= 16);
        for (size_t i = 0; i < count; i++)
                c[i] = (Command){ .kind = 0, .ev = { .subsystem = subsystem, .action = action, .index = first + i,
                                                     .seqnum = ++harness_seqnum } };
        /* One write (below PIPE_BUF, so atomic): the manager's thread sees one burst, never a part. */
        ASSERT(write(h->command_pipe[1], c, count * sizeof(c[0])) == (ssize_t) (count * sizeof(c[0])));
}

/* ---- setup ------------------------------------------------------------------------------ */

static void start_bus(Harness *h) {
        char conf[PATH_MAX], address[512];
        int fds[2];
        ssize_t n;

        snprintf(conf, sizeof(conf), "%s/bus.conf", h->dir);
        /* A system bus like the real one: the shipped policy decides who owns hotplugd's name. */
        writef(conf,
               "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
               " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
               "<busconfig>\n"
               "  <type>system</type>\n"
               "  <listen>unix:path=%s/bus</listen>\n"
               "  <auth>EXTERNAL</auth>\n"
               "  <policy context=\"default\">\n"
               "    <allow user=\"*\"/>\n"
               "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
               "    <allow receive_sender=\"*\"/>\n"
               "  </policy>\n"
               "  <policy user=\"root\"><allow own=\"org.freedesktop.PolicyKit1\"/></policy>\n"
               "  <include>%s/dbus/org.hotplugd.Hotplug1.conf</include>\n"
               "</busconfig>\n",
               h->dir, source_dir());
        ASSERT(pipe2(fds, O_CLOEXEC) == 0);
        h->bus_pid = fork();
        ASSERT(h->bus_pid >= 0);
        if (h->bus_pid == 0) {
                char arg[PATH_MAX + 16];

                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(fds[1], 3);
                snprintf(arg, sizeof(arg), "--config-file=%s", conf);
                execlp("dbus-daemon", "dbus-daemon", arg, "--nofork", "--nopidfile", "--print-address=3", (char *) NULL);
                fprintf(stderr, "dbus-daemon not found: install the dbus package.\n");
                _exit(127);
        }
        close(fds[1]);
        n = read(fds[0], address, sizeof(address) - 1);
        ASSERT(n > 0 && "dbus-daemon did not print its address");
        close(fds[0]);
        address[n] = 0;
        address[strcspn(address, "\n")] = 0;
        setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1);
}

void harness_start(Harness *h, const char *spec_json) {
        char path[PATH_MAX], cmd[PATH_MAX * 3];
        int r;

        (void) tests_run; /* tests.h's counter: the scenarios count themselves */
        if (geteuid() != 0) {
                fprintf(stderr, "The bus tests run as root: the private system bus gives the daemon's name to root only.\n");
                exit(EXIT_FAILURE);
        }
        memset(h, 0, sizeof(*h));
        pthread_mutex_init(&h->pk.lock, NULL);
        snprintf(h->dir, sizeof(h->dir), "/tmp/hotplugd-bus-test-XXXXXX");
        ASSERT(mkdtemp(h->dir));
        snprintf(h->root, sizeof(h->root), "%s/root", h->dir);
        snprintf(path, sizeof(path), "%s/spec.json", h->dir);
        writef(path, "%s", spec_json ?: default_spec);
        snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s/tests/gen-tree.py' '%s' --spec '%s' >/dev/null", source_dir(),
                 h->root, path);
        ASSERT(system(cmd) == 0);
        snprintf(path, sizeof(path), "%s/etc", h->root);
        ASSERT(mkdir(path, 0755) == 0 || errno == EEXIST);
        snprintf(path, sizeof(path), "%s/etc/hotplugd", h->root);
        ASSERT(mkdir(path, 0755) == 0 || errno == EEXIST);
        snprintf(path, sizeof(path), "%s/etc/hotplugd/hotplugd.conf", h->root);
        writef(path, "[Online]\nPolicy=offline\n");

        start_bus(h);
        ASSERT(pthread_create(&h->polkit_thread, NULL, polkit_main, h) == 0);
        for (bool ready = false; !ready; usleep(1000)) {
                pthread_mutex_lock(&h->pk.lock);
                ready = h->pk.ready;
                pthread_mutex_unlock(&h->pk.lock);
        }
        ASSERT(pipe2(h->command_pipe, O_CLOEXEC | O_NONBLOCK) == 0);
        ASSERT(pipe2(h->ready_pipe, O_CLOEXEC) == 0);
        ASSERT(pthread_create(&h->manager_thread, NULL, manager_main, h) == 0);
        ASSERT(read(h->ready_pipe[0], &r, sizeof(r)) == sizeof(r));
        ASSERT_OK(r);
        ASSERT_OK(sd_bus_open_system(&h->bus));
}

unsigned harness_hanging_job(Harness *h, unsigned node) {
        Command c = { .kind = 2, .ev = { .index = node } };
        int id;

        ASSERT(write(h->command_pipe[1], &c, sizeof(c)) == sizeof(c));
        ASSERT(read(h->ready_pipe[0], &id, sizeof(id)) == sizeof(id));
        ASSERT_OK(id);
        return (unsigned) id;
}

void harness_stop_manager(Harness *h) {
        Command c = { .kind = 1 };

        if (h->manager_stopped)
                return;
        ASSERT(write(h->command_pipe[1], &c, sizeof(c)) == sizeof(c));
        ASSERT(pthread_join(h->manager_thread, NULL) == 0);
        h->manager_stopped = true;
}

void harness_stop(Harness *h) {
        char cmd[PATH_MAX + 16];

        clear_signals(h);
        harness_stop_manager(h);
        pthread_mutex_lock(&h->pk.lock);
        h->pk.stop = true;
        pthread_mutex_unlock(&h->pk.lock);
        ASSERT(pthread_join(h->polkit_thread, NULL) == 0);
        h->bus = sd_bus_flush_close_unref(h->bus);
        kill(h->bus_pid, SIGTERM);
        (void) waitpid(h->bus_pid, NULL, 0);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
        ASSERT(system(cmd) == 0);
}

/* ---- client helpers --------------------------------------------------------------------- */

sd_bus_message *call(Harness *h, sd_bus_error *error, const char *method, const char *types, ...) {
        sd_bus_message *m = NULL, *reply = NULL;
        va_list ap;

        ASSERT_OK(sd_bus_message_new_method_call(h->bus, &m, "org.hotplugd.Hotplug1", "/org/hotplugd/Hotplug1",
                                                 "org.hotplugd.Hotplug1.Manager", method));
        if (types) {
                va_start(ap, types);
                ASSERT_OK(sd_bus_message_appendv(m, types, ap));
                va_end(ap);
        }
        sd_bus_error_free(error);
        (void) sd_bus_call(h->bus, m, 30 * 1000 * 1000, error, &reply);
        sd_bus_message_unref(m);
        return reply;
}

void expect_error(const sd_bus_error *e, const char *name) {
        if (!sd_bus_error_is_set(e) || !streq(e->name, name)) {
                fprintf(stderr, "expected %s, got %s: %s\n", name, e->name ?: "success", e->message ?: "");
                exit(EXIT_FAILURE);
        }
        printf("# %s: %s\n", name, e->message);
}

static bool subscribed;

static int on_any_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Harness *h = userdata;

        if (h->n_signals < ELEMENTSOF(h->signals))
                h->signals[h->n_signals++] = sd_bus_message_ref(m);
        return 0;
}

void collect_signals(Harness *h, unsigned ms) {
        uint64_t end;
        struct timespec ts;

        if (!subscribed) {
                ASSERT_OK(sd_bus_add_match(h->bus, NULL, "type='signal',sender='org.hotplugd.Hotplug1'", on_any_signal, h));
                subscribed = true;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        end = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000 + ms;
        for (;;) {
                uint64_t now;

                while (sd_bus_process(h->bus, NULL) > 0)
                        ;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
                if (now >= end)
                        break;
                (void) sd_bus_wait(h->bus, (end - now) * 1000);
        }
}

void clear_signals(Harness *h) {
        for (size_t i = 0; i < h->n_signals; i++)
                sd_bus_message_unref(h->signals[i]);
        h->n_signals = 0;
}

size_t count_signals(Harness *h, const char *member, const char *path) {
        size_t n = 0;

        for (size_t i = 0; i < h->n_signals; i++)
                if (streq(sd_bus_message_get_member(h->signals[i]), member) &&
                    (!path || streq(sd_bus_message_get_path(h->signals[i]), path)))
                        n++;
        return n;
}

bool changed_property(Harness *h, const char *path, const char *property) {
        for (size_t i = 0; i < h->n_signals; i++) {
                sd_bus_message *m = h->signals[i];
                const char *iface, *name;
                bool found = false;

                if (!streq(sd_bus_message_get_member(m), "PropertiesChanged") || !streq(sd_bus_message_get_path(m), path))
                        continue;
                ASSERT_OK(sd_bus_message_rewind(m, true));
                ASSERT_OK(sd_bus_message_read(m, "s", &iface));
                ASSERT_OK(sd_bus_message_enter_container(m, 'a', "{sv}"));
                while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                        ASSERT_OK(sd_bus_message_read(m, "s", &name));
                        found = found || streq(name, property);
                        ASSERT_OK(sd_bus_message_skip(m, "v"));
                        ASSERT_OK(sd_bus_message_exit_container(m));
                }
                ASSERT_OK(sd_bus_message_exit_container(m));
                ASSERT_OK(sd_bus_message_enter_container(m, 'a', "s"));
                while (sd_bus_message_read(m, "s", &name) > 0)
                        found = found || streq(name, property);
                if (found)
                        return true;
        }
        return false;
}
