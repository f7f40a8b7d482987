/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-worker.c — the interruptible write thread: results, order, timeouts, cancellation, races. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "tests.h"
#include "util.h"
#include "worker.h"

#define INT_TO_PTR(i) ((void *) (intptr_t) (i))

typedef struct Run {
        sd_event *event;
        Worker *worker;
        WorkBatch *batch;
        int n_done;                     /* batches done */
        int expect_done;
        char events[256];               /* "s0 e0 s1 e1 D" */
        size_t n_events;
        int results[16];
        uint64_t durations[16];         /* as the worker measured each write */
        uint64_t started_at, done_at;   /* CLOCK_MONOTONIC µs */
} Run;

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void on_progress(WorkBatch *b, WorkItem *item, void *userdata) {
        Run *run = userdata;

        if (!item->done && run->started_at == 0)
                run->started_at = now_usec();
        run->n_events += (size_t) snprintf(run->events + run->n_events, sizeof(run->events) - run->n_events, "%c%" PRIu64 " ",
                                           item->done ? 'e' : 's', item->tag);
}

static void on_done(WorkBatch *b, void *userdata) {
        Run *run = userdata;
        size_t n;
        WorkItem *items = work_batch_items(b, &n);

        for (size_t i = 0; i < n && i < ELEMENTSOF(run->results); i++)
                run->results[i] = items[i].result, run->durations[i] = items[i].duration_usec;
        run->done_at = now_usec();
        run->n_events += (size_t) snprintf(run->events + run->n_events, sizeof(run->events) - run->n_events, "D ");
        if (++run->n_done == run->expect_done)
                (void) sd_event_exit(run->event, 0);
}

static char tmpdir[PATH_MAX];
static int dirfd_ = -1;

static void setup(void) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-worker-XXXXXX");
        ASSERT(mkdtemp(tmpdir));
        dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT(dirfd_ >= 0);
}

static void write_file(const char *name, const char *text) {
        int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT(fd >= 0);
        ASSERT(write(fd, text, strlen(text)) == (ssize_t) strlen(text));
        close(fd);
}

static void read_file(const char *name, char *buf, size_t size) {
        int fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        ASSERT(fd >= 0);
        n = read(fd, buf, size - 1);
        ASSERT(n >= 0);
        buf[n] = 0;
        close(fd);
}

static WorkItem item(const char *path, const char *value, uint64_t timeout_usec, uint64_t tag) {
        WorkItem it = { .timeout_usec = timeout_usec, .tag = tag };

        snprintf(it.path, sizeof(it.path), "%s", path);
        snprintf(it.value, sizeof(it.value), "%s", value);
        return it;
}

static void run_new(Run *run) {
        *run = (Run) {};
        ASSERT(sd_event_new(&run->event) >= 0);
        ASSERT(worker_new(run->event, dirfd_, &run->worker) >= 0);
}

static void run_loop(Run *run) {
        /* A test that hangs is a failure, not a wait. */
        sd_event_source *guard = NULL;
        ASSERT(sd_event_add_time_relative(run->event, &guard, CLOCK_MONOTONIC, 10 * 1000 * 1000, 0, NULL,
                                          INT_TO_PTR(-ETIME)) >= 0);
        ASSERT_EQ(sd_event_loop(run->event), 0);
        sd_event_source_unref(guard);
}

static void run_free(Run *run) {
        run->worker = worker_free(run->worker);
        run->event = sd_event_unref(run->event);
}

/* Results, and progress strictly in order: start, end, start, end … then done. */
static void test_success_and_order(void) {
        WorkItem items[3];
        char buf[64];
        Run run;

        write_file("a", "online\n");
        write_file("b", "online\n");
        write_file("c", "online\n");
        items[0] = item("a", "offline", 0, 0);
        items[1] = item("b", "offline", 0, 1);
        items[2] = item("c", "online_movable", 0, 2);
        run_new(&run);
        run.expect_done = 1;
        ASSERT(worker_submit(run.worker, items, 3, on_progress, on_done, &run, NULL) >= 0);
        run_loop(&run);
        ASSERT_STREQ(run.events, "s0 e0 s1 e1 s2 e2 D ");
        ASSERT_EQ(run.results[0], 0);
        ASSERT_EQ(run.results[1], 0);
        ASSERT_EQ(run.results[2], 0);
        read_file("a", buf, sizeof(buf));
        ASSERT_STREQ(buf, "offline");
        read_file("c", buf, sizeof(buf));
        ASSERT_STREQ(buf, "online_movable");
        run_free(&run);
}

/* The kernel's errno is the result, unchanged. */
static void test_errors(void) {
        WorkItem items[2];
        Run run;

        ASSERT(mkdirat(dirfd_, "dir", 0755) >= 0);
        items[0] = item("missing/state", "offline", 0, 0);
        items[1] = item("dir", "offline", 0, 1);
        run_new(&run);
        run.expect_done = 1;
        ASSERT(worker_submit(run.worker, items, 2, NULL, on_done, &run, NULL) >= 0);
        run_loop(&run);
        ASSERT_EQ(run.results[0], -ENOENT);
        ASSERT_EQ(run.results[1], -EISDIR);
        run_free(&run);
}

/* A FIFO without a reader blocks in open(2), like an offline that never ends: the per-write
 * timeout must interrupt it promptly. The following item still runs. */
static void test_timeout(void) {
        WorkItem items[2];
        uint64_t late;
        Run run;

        ASSERT(mkfifoat(dirfd_, "fifo", 0600) >= 0);
        write_file("after", "online\n");
        items[0] = item("fifo", "offline", 50 * 1000, 0);
        items[1] = item("after", "offline", 50 * 1000, 1);
        run_new(&run);
        run.expect_done = 1;
        ASSERT(worker_submit(run.worker, items, 2, on_progress, on_done, &run, NULL) >= 0);
        run_loop(&run);
        ASSERT_EQ(run.results[0], -ETIMEDOUT);
        ASSERT_EQ(run.results[1], 0);
        late = run.durations[0];
        printf("# timeout 50 ms: the blocked write returned after %" PRIu64 " µs\n", late);
        /* ~1 ms over the deadline is typical; 200 ms leaves room for a loaded CI machine. */
        ASSERT(late >= 49 * 1000 && late < 250 * 1000);
        ASSERT(unlinkat(dirfd_, "fifo", 0) >= 0);
        run_free(&run);
}

/* A FIFO whose buffer is full blocks in write(2) itself. */
static int full_fifo(const char *name) {
        char junk[4096];
        int fd;

        memset(junk, 'x', sizeof(junk));
        ASSERT(mkfifoat(dirfd_, name, 0600) >= 0);
        fd = openat(dirfd_, name, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        ASSERT(fd >= 0);
        while (write(fd, junk, sizeof(junk)) > 0)
                ;
        ASSERT(errno == EAGAIN);
        return fd;
}

typedef struct Cancel {
        Run *run;
        uint64_t at;
} Cancel;

static int on_cancel_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Cancel *c = userdata;

        c->at = now_usec();
        worker_cancel(c->run->worker, c->run->batch);
        return 0;
}

/* Cancels 30 ms after the first write started (not after submission: a loaded machine may be
 * slow to start the thread, and then nothing would be in flight). */
static void on_progress_cancel(WorkBatch *b, WorkItem *it, void *userdata) {
        Cancel *c = userdata;

        on_progress(b, it, c->run);
        if (it->tag == 0 && !it->done)
                ASSERT(sd_event_add_time_relative(c->run->event, NULL, CLOCK_MONOTONIC, 30 * 1000, 1, on_cancel_timer, c) >= 0);
}

static void on_done_cancel(WorkBatch *b, void *userdata) {
        on_done(b, ((Cancel *) userdata)->run);
}

/* Cancel interrupts the write in flight and skips what was not started (never written). */
static void test_cancel(void) {
        WorkItem items[3];
        char buf[64];
        Cancel c;
        Run run;
        int fd = full_fifo("full");

        write_file("untouched", "online\n");
        items[0] = item("full", "offline", 0, 0);
        items[1] = item("untouched", "offline", 0, 1);
        items[2] = item("untouched", "offline", 0, 2);
        run_new(&run);
        run.expect_done = 1;
        c = (Cancel) { .run = &run };
        ASSERT(worker_submit(run.worker, items, 3, on_progress_cancel, on_done_cancel, &c, &run.batch) >= 0);
        run_loop(&run);
        ASSERT_EQ(run.results[0], -ECANCELED);
        ASSERT_EQ(run.results[1], -ECANCELED);
        ASSERT_EQ(run.results[2], -ECANCELED);
        /* Items cancelled before they started report only their end. */
        ASSERT_STREQ(run.events, "s0 e0 e1 e2 D ");
        printf("# cancel: batch done %" PRIu64 " µs after worker_cancel()\n", run.done_at - c.at);
        ASSERT(run.done_at - c.at < 200 * 1000);
        read_file("untouched", buf, sizeof(buf));
        ASSERT_STREQ(buf, "online\n");
        close(fd);
        ASSERT(unlinkat(dirfd_, "full", 0) >= 0);
        run_free(&run);
}

typedef struct Poke {
        Run *run;
        int fd;
        int n;
        sd_event_source *source;
} Poke;

static int on_poke(sd_event_source *s, uint64_t usec, void *userdata) {
        Poke *p = userdata;
        char junk[65536];

        if (++p->n <= 10) {
                /* A signal nobody asked for: the write must not end with EINTR. */
                worker_poke(p->run->worker);
                (void) sd_event_source_set_time_relative(s, 5 * 1000);
                return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        /* Then let it finish by draining the pipe. */
        while (read(p->fd, junk, sizeof(junk)) > 0)
                ;
        return 0;
}

static void test_spurious_signal(void) {
        WorkItem it = item("spurious", "offline", 0, 0);
        Poke p;
        Run run;

        run_new(&run);
        p = (Poke) { .run = &run, .fd = full_fifo("spurious") };
        run.expect_done = 1;
        ASSERT(worker_submit(run.worker, &it, 1, NULL, on_done, &run, NULL) >= 0);
        ASSERT(sd_event_add_time_relative(run.event, &p.source, CLOCK_MONOTONIC, 20 * 1000, 0, on_poke, &p) >= 0);
        run_loop(&run);
        ASSERT_EQ(run.results[0], 0);
        ASSERT(p.n > 10);
        sd_event_source_unref(p.source);
        close(p.fd);
        ASSERT(unlinkat(dirfd_, "spurious", 0) >= 0);
        run_free(&run);
}

/* Batches run one after another, in submission order; a timeout in one does not leak into the next. */
static void test_batches_in_order(void) {
        WorkItem a[2], b[1];
        Run run;

        ASSERT(mkfifoat(dirfd_, "slow", 0600) >= 0);
        write_file("x", "online\n");
        a[0] = item("slow", "offline", 30 * 1000, 10);
        a[1] = item("x", "offline", 30 * 1000, 11);
        b[0] = item("x", "online", 30 * 1000, 20);
        run_new(&run);
        run.expect_done = 2;
        ASSERT(worker_submit(run.worker, a, 2, on_progress, on_done, &run, NULL) >= 0);
        ASSERT(worker_submit(run.worker, b, 1, on_progress, on_done, &run, NULL) >= 0);
        ASSERT_EQ(worker_pending(run.worker), 2);
        run_loop(&run);
        ASSERT_STREQ(run.events, "s10 e10 s11 e11 D s20 e20 D ");
        ASSERT_EQ(run.results[0], 0); /* the second batch's only item */
        ASSERT_EQ(worker_pending(run.worker), 0);
        ASSERT(unlinkat(dirfd_, "slow", 0) >= 0);
        run_free(&run);
}

static void on_done_count(WorkBatch *b, void *userdata) {
        size_t n;
        WorkItem *items = work_batch_items(b, &n);

        for (size_t i = 0; i < n; i++)
                ASSERT_EQ(items[i].result, -ECANCELED);
        (*(int *) userdata)++;
}

/* Shutdown with a write stuck in the kernel: it is interrupted, every caller hears "cancelled". */
static void test_free_while_blocked(void) {
        WorkItem it[2] = { item("stuck", "offline", 0, 0), item("stuck", "offline", 0, 1) };
        sd_event *e = NULL;
        Worker *w = NULL;
        int n_done = 0;
        uint64_t t;

        ASSERT(mkfifoat(dirfd_, "stuck", 0600) >= 0);
        ASSERT(sd_event_new(&e) >= 0);
        ASSERT(worker_new(e, dirfd_, &w) >= 0);
        ASSERT(worker_submit(w, it, 1, NULL, on_done_count, &n_done, NULL) >= 0);
        ASSERT(worker_submit(w, it + 1, 1, NULL, on_done_count, &n_done, NULL) >= 0);
        usleep(20 * 1000); /* let it enter open(2) */
        t = now_usec();
        worker_free(w);
        t = now_usec() - t;
        printf("# worker_free() with a blocked write took %" PRIu64 " µs\n", t);
        ASSERT(t < 200 * 1000);
        ASSERT_EQ(n_done, 2);
        sd_event_unref(e);
        ASSERT(unlinkat(dirfd_, "stuck", 0) >= 0);
}

static void teardown(void) {
        char cmd[PATH_MAX + 16];

        close(dirfd_);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        ASSERT(system(cmd) == 0);
}

int main(void) {
        setup();
        RUN(test_success_and_order);
        RUN(test_errors);
        RUN(test_timeout);
        RUN(test_cancel);
        RUN(test_spurious_signal);
        RUN(test_batches_in_order);
        RUN(test_free_while_blocked);
        teardown();
        return 0;
}
