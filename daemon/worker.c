/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* worker.c — blocking sysfs writes on a thread of their own, each one interruptible. */
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>

#include "sysfs.h"
#include "worker.h"

/*
 * Why a thread, and why a signal
 * ------------------------------
 * Writing "offline" to memoryN/state makes the kernel isolate the block and migrate every page
 * out of it. offline_pages() retries migration for as long as it takes — seconds, minutes, or
 * forever when a page is pinned — and has no timeout of its own since v4.15. The only way out is
 * a signal: the retry loop checks signal_pending() and returns -EINTR, after rolling the block
 * back to online. So the write cannot happen on the event loop (it would stall D-Bus, uevents and
 * the watchdog for its whole duration), and it cannot be bounded by anything but a signal.
 *
 * signal_pending() only sees signals the thread has unblocked and does not ignore. sd-event
 * consumes its signals through signalfd and keeps them blocked, so SIGTERM never aborts a write.
 * Hence a dedicated signal (SIGRTMIN+4) with a no-op handler, installed without SA_RESTART
 * (the kernel returns -EINTR, not -ERESTARTSYS, from this path; SA_RESTART would not matter,
 * but nothing should suggest otherwise), blocked in every thread but this worker, and sent with
 * pthread_kill() to this thread only. The event loop owns every deadline: it arms a timer when a
 * write starts and sends the signal when the timer fires or the caller cancels.
 *
 * A signal and a write are not atomic with respect to each other. The signal may land just
 * before the worker enters write(2) (then the write blocks and nobody would wake it), or late,
 * after the worker moved on to the next write (then that innocent write gets -EINTR). Both are
 * handled without locks around the syscall: the loop re-sends the signal every few milliseconds
 * until the write it wants interrupted has returned, and the worker treats an -EINTR that was
 * not asked for (interrupt_seq is not its sequence number) as spurious and simply writes again,
 * which is safe because an interrupted offline leaves the block online as before.
 *
 * Other writers spin rather than block: state_store() takes device_hotplug_lock with a trylock
 * and restart_syscall(), so while a long offline runs here, an online write from the loop would
 * busy-wait inside the kernel until it ends. Every state write therefore goes through this one
 * queue, in order.
 *
 * Results travel back through an eventfd watched by the loop; the worker never touches the
 * model. While a block may be going offline, only `state` may be read (lockless); reading
 * `online` takes the device lock that the offline holds and would block the reader.
 */

#define KICK_INTERVAL_USEC (2 * 1000)

struct WorkBatch {
        Worker *worker;
        WorkItem *items;
        size_t n_items;
        WorkProgressCallback progress;
        WorkDoneCallback done;
        void *userdata;
        WorkBatch *next;

        /* Under the lock. */
        size_t next_item;               /* worker: the next item to start */
        bool cancelled;

        /* Loop only. */
        size_t reported;                /* items whose end was reported */
        bool reported_start;            /* the start of items[reported] was reported */
};

struct Worker {
        sd_event *event;
        int dirfd;
        int efd;
        sd_event_source *efd_source;
        sd_event_source *timer;         /* deadline of the write in flight */
        sd_event_source *kick;          /* re-sends the signal until the write returns */
        pthread_t thread;
        bool thread_started;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* Under the lock. */
        WorkBatch *head, *tail;
        bool quit;
        uint64_t seq;                   /* sequence number of the write in flight, 0: none */
        uint64_t last_seq;
        WorkBatch *current;             /* the batch of the write in flight */
        uint64_t current_started;       /* CLOCK_MONOTONIC µs */
        uint64_t current_timeout;
        uint64_t interrupt_seq;         /* the write the loop wants interrupted */
        int interrupt_reason;           /* -ETIMEDOUT or -ECANCELED */

        /* Loop only. */
        uint64_t armed_seq;
};

int worker_signal(void) {
        return SIGRTMIN + 4;
}

static void worker_signal_handler(int sig) {
        /* Nothing: being delivered is the point (write(2) returns -EINTR). */
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void notify_loop(Worker *w) {
        uint64_t one = 1;

        /* Only fails if the counter would overflow, which means the loop is already woken. */
        (void) !write(w->efd, &one, sizeof(one));
}

/* Called with the lock held. */
static void request_interrupt(Worker *w, int reason) {
        if (w->seq == 0)
                return;
        w->interrupt_seq = w->seq;
        w->interrupt_reason = reason;
        (void) pthread_kill(w->thread, worker_signal());
        if (w->kick) {
                (void) sd_event_source_set_time_relative(w->kick, KICK_INTERVAL_USEC);
                (void) sd_event_source_set_enabled(w->kick, SD_EVENT_ONESHOT);
        }
}

static int interruptible_write(Worker *w, uint64_t seq, const char *path, const char *value) {
        for (;;) {
                int r = sysfs_write_at(w->dirfd, path, value), reason;

                if (r != -EINTR)
                        return r;
                pthread_mutex_lock(&w->lock);
                reason = w->interrupt_seq == seq ? w->interrupt_reason : 0;
                pthread_mutex_unlock(&w->lock);
                if (reason < 0)
                        return reason;
                /* Spurious (see the comment at the top): write again. */
        }
}

static WorkBatch *find_work(Worker *w) {
        for (WorkBatch *b = w->head; b; b = b->next)
                if (b->next_item < b->n_items)
                        return b;
        return NULL;
}

static void *worker_thread(void *userdata) {
        Worker *w = userdata;
        sigset_t ss;

        sigemptyset(&ss);
        sigaddset(&ss, worker_signal());
        (void) pthread_sigmask(SIG_UNBLOCK, &ss, NULL);

        pthread_mutex_lock(&w->lock);
        for (;;) {
                char path[sizeof(((WorkItem *) NULL)->path)], value[sizeof(((WorkItem *) NULL)->value)];
                WorkBatch *b;
                WorkItem *item;
                uint64_t seq, start;
                int r;

                while (!w->quit && !(b = find_work(w)))
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->quit)
                        break;

                if (b->cancelled) {
                        for (; b->next_item < b->n_items; b->next_item++) {
                                b->items[b->next_item].done = true;
                                b->items[b->next_item].result = -ECANCELED;
                        }
                        notify_loop(w);
                        continue;
                }

                item = &b->items[b->next_item];
                seq = w->seq = ++w->last_seq;
                start = now_usec();
                w->current = b;
                w->current_started = start;
                w->current_timeout = item->timeout_usec;
                item->started = true;
                memcpy(path, item->path, sizeof(path));
                memcpy(value, item->value, sizeof(value));
                notify_loop(w);
                pthread_mutex_unlock(&w->lock);

                r = interruptible_write(w, seq, path, value);

                pthread_mutex_lock(&w->lock);
                item->result = r;
                item->duration_usec = now_usec() - start;
                item->done = true;
                b->next_item++;
                w->seq = 0;
                w->current = NULL;
                notify_loop(w);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* Delivers what the worker did, in order, calling back without the lock held. */
static void worker_dispatch(Worker *w) {
        for (;;) {
                enum { NOTHING, START, END, DONE } what = NOTHING;
                WorkItem copy;
                WorkBatch *b;

                pthread_mutex_lock(&w->lock);
                if (w->seq != 0 && w->seq != w->armed_seq) {
                        w->armed_seq = w->seq;
                        if (w->current_timeout > 0) {
                                (void) sd_event_source_set_time(w->timer, w->current_started + w->current_timeout);
                                (void) sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
                        } else
                                (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
                } else if (w->seq == 0)
                        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);

                b = w->head;
                if (b) {
                        if (b->reported < b->n_items) {
                                WorkItem *item = &b->items[b->reported];

                                if (!b->reported_start && item->started) {
                                        what = START;
                                        b->reported_start = true;
                                } else if (item->done) {
                                        what = END;
                                        b->reported++;
                                        b->reported_start = false;
                                }
                                if (what != NOTHING)
                                        copy = *item;
                                if (what == START) {
                                        /* It may have ended already: this report is about its start. */
                                        copy.done = false;
                                        copy.result = 0;
                                        copy.duration_usec = 0;
                                }
                        } else if (b->next_item >= b->n_items) {
                                what = DONE;
                                w->head = b->next;
                                if (!w->head)
                                        w->tail = NULL;
                        }
                }
                pthread_mutex_unlock(&w->lock);

                switch (what) {
                case NOTHING:
                        return;
                case START:
                case END:
                        /* Cancelled items end without having started: report only their end. */
                        if (b->progress && (what == END || copy.started))
                                b->progress(b, &copy, b->userdata);
                        break;
                case DONE:
                        if (b->done)
                                b->done(b, b->userdata);
                        free(b->items);
                        free(b);
                        break;
                }
        }
}

static int on_efd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        uint64_t v;

        (void) !read(fd, &v, sizeof(v));
        worker_dispatch(w);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;

        pthread_mutex_lock(&w->lock);
        if (w->seq != 0 && w->seq == w->armed_seq && w->interrupt_seq != w->seq)
                request_interrupt(w, -ETIMEDOUT);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

static int on_kick(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;

        pthread_mutex_lock(&w->lock);
        if (w->seq != 0 && w->seq == w->interrupt_seq) {
                (void) pthread_kill(w->thread, worker_signal());
                (void) sd_event_source_set_time_relative(s, KICK_INTERVAL_USEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        pthread_mutex_unlock(&w->lock);
        return 0;
}

Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        if (w->thread_started) {
                pthread_mutex_lock(&w->lock);
                w->quit = true;
                for (WorkBatch *b = w->head; b; b = b->next)
                        b->cancelled = true;
                if (w->seq != 0) {
                        w->interrupt_seq = w->seq;
                        w->interrupt_reason = -ECANCELED;
                }
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
                /* The loop is not running any more: re-send the signal here until the thread is out. */
                for (;;) {
                        struct timespec ts;

                        (void) pthread_kill(w->thread, worker_signal());
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += KICK_INTERVAL_USEC * 1000;
                        if (ts.tv_nsec >= 1000000000) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000;
                        }
                        if (pthread_timedjoin_np(w->thread, NULL, &ts) == 0)
                                break;
                }
        }
        /* Everything not done now ends as cancelled, and every caller hears about it. */
        for (WorkBatch *b = w->head; b; b = b->next)
                for (size_t i = 0; i < b->n_items; i++)
                        if (!b->items[i].done) {
                                b->items[i].done = true;
                                b->items[i].result = -ECANCELED;
                        }
        while (w->head) {
                WorkBatch *b = w->head;

                w->head = b->next;
                if (b->done)
                        b->done(b, b->userdata);
                free(b->items);
                free(b);
        }
        sd_event_source_disable_unref(w->efd_source);
        sd_event_source_disable_unref(w->timer);
        sd_event_source_disable_unref(w->kick);
        sd_event_unref(w->event);
        if (w->efd >= 0)
                close(w->efd);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return NULL;
}

int worker_new(sd_event *event, int dirfd, Worker **ret) {
        _cleanup_(worker_freep) Worker *w = NULL;
        struct sigaction sa = { .sa_handler = worker_signal_handler, .sa_flags = 0 };
        sigset_t ss, all, saved;
        int r;

        w = calloc(1, sizeof(Worker));
        if (!w)
                return -ENOMEM;
        w->efd = -1;
        w->dirfd = dirfd;
        w->event = sd_event_ref(event);
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);

        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0)
                return negative_errno();
        r = sd_event_add_io(event, &w->efd_source, w->efd, EPOLLIN, on_efd, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->efd_source, "worker-results");
        /* Accuracy 1 µs: sd-event would otherwise coalesce wake-ups within 250 ms. */
        r = sd_event_add_time(event, &w->timer, CLOCK_MONOTONIC, 0, 1, on_timer, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(w->timer, "worker-timeout");
        r = sd_event_add_time_relative(event, &w->kick, CLOCK_MONOTONIC, KICK_INTERVAL_USEC, 1, on_kick, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(w->kick, SD_EVENT_OFF);
        (void) sd_event_source_set_description(w->kick, "worker-kick");

        /* No SA_RESTART (see the top of this file). Process-wide, but only the worker unblocks it. */
        sigemptyset(&sa.sa_mask);
        if (sigaction(worker_signal(), &sa, NULL) < 0)
                return negative_errno();
        sigemptyset(&ss);
        sigaddset(&ss, worker_signal());
        r = -pthread_sigmask(SIG_BLOCK, &ss, NULL);
        if (r < 0)
                return r;

        /* The thread starts with every signal blocked and unblocks only its own: SIGTERM and
         * friends belong to the loop's signalfd. */
        sigfillset(&all);
        r = -pthread_sigmask(SIG_BLOCK, &all, &saved);
        if (r < 0)
                return r;
        r = -pthread_create(&w->thread, NULL, worker_thread, w);
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return r;
        w->thread_started = true;
        (void) pthread_setname_np(w->thread, "hotplugd-worker");

        *ret = TAKE_PTR(w);
        return 0;
}

int worker_submit(Worker *w, const WorkItem *items, size_t n, WorkProgressCallback progress,
                  WorkDoneCallback done, void *userdata, WorkBatch **ret) {
        WorkBatch *b;

        if (n == 0)
                return -EINVAL;
        b = calloc(1, sizeof(WorkBatch));
        if (!b)
                return -ENOMEM;
        b->items = malloc(n * sizeof(WorkItem));
        if (!b->items) {
                free(b);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                b->items[i] = items[i];
                b->items[i].started = b->items[i].done = false;
                b->items[i].result = 0;
                b->items[i].duration_usec = 0;
        }
        b->worker = w;
        b->n_items = n;
        b->progress = progress;
        b->done = done;
        b->userdata = userdata;

        pthread_mutex_lock(&w->lock);
        if (w->quit) {
                /* worker_free() is running (a done callback wants more): nothing runs any more. */
                pthread_mutex_unlock(&w->lock);
                free(b->items);
                free(b);
                return -ESHUTDOWN;
        }
        if (w->tail)
                w->tail->next = b;
        else
                w->head = b;
        w->tail = b;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (ret)
                *ret = b;
        return 0;
}

void worker_cancel(Worker *w, WorkBatch *b) {
        pthread_mutex_lock(&w->lock);
        b->cancelled = true;
        if (w->current == b && w->interrupt_seq != w->seq)
                request_interrupt(w, -ECANCELED);
        pthread_mutex_unlock(&w->lock);
}

WorkItem *work_batch_items(WorkBatch *b, size_t *ret_n) {
        if (ret_n)
                *ret_n = b->n_items;
        return b->items;
}

size_t worker_pending(Worker *w) {
        size_t n = 0;

        pthread_mutex_lock(&w->lock);
        for (WorkBatch *b = w->head; b; b = b->next)
                n++;
        pthread_mutex_unlock(&w->lock);
        return n;
}

void worker_poke(Worker *w) {
        (void) pthread_kill(w->thread, worker_signal());
}
