/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* worker.h — a thread for sysfs writes that may block for minutes, interruptible per write. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

typedef struct Worker Worker;
typedef struct WorkBatch WorkBatch;

typedef struct WorkItem {
        /* Input. */
        char path[64];                  /* relative to the worker's directory fd: "memory12/state" */
        char value[24];                 /* written with one write(2): "offline", "online_movable" */
        uint64_t timeout_usec;          /* per write, from the moment it starts; 0: none */
        uint64_t tag;                   /* the caller's, e.g. the block index */

        /* Output, valid once done is set. */
        bool started;
        bool done;
        int result;                     /* 0, the kernel's negative errno, -ETIMEDOUT or -ECANCELED */
        uint64_t duration_usec;         /* CLOCK_MONOTONIC time the write took */
} WorkItem;

/* Called on the event loop when an item starts (item->done false) and when it ends (item->done
 * true), in order. May call worker_cancel() and worker_submit(). */
typedef void (*WorkProgressCallback)(WorkBatch *b, WorkItem *item, void *userdata);
/* Called on the event loop once every item of the batch has ended (results in the items); the
 * batch is freed when this returns. */
typedef void (*WorkDoneCallback)(WorkBatch *b, void *userdata);

/* Starts the thread. dirfd stays owned by the caller and must outlive the worker. */
int worker_new(sd_event *event, int dirfd, Worker **ret);
/* Interrupts the write in flight, ends every queued batch with -ECANCELED (their done
 * callbacks run from here), joins the thread. */
Worker *worker_free(Worker *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Worker *, worker_free);

/* Queues n items (copied) as one batch, run in order after the batches already queued.
 * -ESHUTDOWN from the done callbacks that worker_free() runs. */
int worker_submit(Worker *w, const WorkItem *items, size_t n, WorkProgressCallback progress,
                  WorkDoneCallback done, void *userdata, WorkBatch **ret);
/* Ends a batch early: the write in flight is interrupted (-ECANCELED unless the kernel finished
 * it first), the items not yet started end with -ECANCELED without being written. */
void worker_cancel(Worker *w, WorkBatch *b);

WorkItem *work_batch_items(WorkBatch *b, size_t *ret_n);
/* Number of batches queued or running. */
size_t worker_pending(Worker *w);
/* The signal that interrupts writes (SIGRTMIN+4). */
int worker_signal(void);
/* Sends the signal without asking for an interrupt: the write must go on (tests the
 * spurious-EINTR path). */
void worker_poke(Worker *w);
