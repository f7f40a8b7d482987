/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* blocks-dbus.c — ListBlocks/ListBlockRanges/ListBlockRuns and OnlineBlocks/OfflineBlocks through the worker. */
#include <inttypes.h>

#include "blocks-dbus.h"
#include "hotplug-bus.h"
#include "log.h"
#include "manager-dbus.h"
#include "scan.h"
#include "worker.h"

#define ONLINE_TIMEOUT_USEC (UINT64_C(30) * 1000 * 1000)

typedef struct BlockResult {
        uint64_t block;
        const char *error;      /* bus error name, NULL: success */
        char *message;
        ssize_t item;           /* index into the batch, -1: decided without writing */
} BlockResult;

typedef struct BlockOp {
        Manager *manager;
        sd_bus_message *request;
        sd_bus_track *track;    /* the caller: if it goes, the rest of the batch is cancelled */
        WorkBatch *batch;
        bool offline;
        uint64_t timeout_usec;
        BlockResult *results;
        size_t n_results;
        struct BlockOp *next, *prev;
} BlockOp;

/* ---- listing ---------------------------------------------------------------------------- */

/* valid_zones as sysfs prints it: the zone plain "online" would pick first, then the others. */
static const char *valid_zones_string(const Block *b, char buf[static 64]) {
        size_t l = 0;

        buf[0] = 0;
        if (b->zone < _ZONE_MAX && (b->valid_zones & ZONE_MASK(b->zone)))
                l = (size_t) snprintf(buf, 64, "%s", zone_to_string(b->zone));
        for (Zone z = 0; z < _ZONE_MAX; z++)
                if ((b->valid_zones & ZONE_MASK(z)) && z != b->zone)
                        l += (size_t) snprintf(buf + l, 64 - l, "%s%s", l ? " " : "", zone_to_string(z));
        return buf;
}

static int read_node_filter(sd_bus_message *message, Manager *m, int32_t *ret, sd_bus_error *error) {
        int32_t node;
        char nodes[256];
        int r;

        r = sd_bus_message_read(message, "i", &node);
        if (r < 0)
                return r;
        if (node < -1)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Node must be -1 (all) or a node id, not %" PRIi32 ".", node);
        if (node >= 0 && !model_node(m->model, node)) {
                manager_format_nodes(m, nodes, sizeof(nodes));
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_NODE, "Node %" PRIi32 " does not exist (nodes: %s).",
                                         node, nodes);
        }
        *ret = node;
        return 0;
}

static const char *device_name(const Model *model, const Block *b) {
        return b->device > 0 && b->device <= model->n_devices ? model->devices[b->device - 1].name : "";
}

int method_list_blocks(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        const Model *model = m->model;
        int32_t node;
        int r;

        r = read_node_filter(message, m, &node, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(tsissss)");
        if (r < 0)
                return r;
        /* 10^5 rows: one tight loop, strings from static tables, no per-row allocation. */
        for (uint64_t i = 0; i < model->n_block_slots; i++) {
                const Block *b = &model->blocks[i];
                char zones[64];

                if (b->state == BLOCK_ABSENT || (node >= 0 && b->nid != node))
                        continue;
                r = sd_bus_message_append(reply, "(tsissss)", i, block_state_to_string(b->state), (int32_t) b->nid,
                                          zone_to_string(b->zone),
                                          b->state == BLOCK_OFFLINE ? valid_zones_string(b, zones) : zone_to_string(b->zone),
                                          owner_to_string(b->owner), device_name(model, b));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* What makes two consecutive blocks one run: lsmem's merge rule (state, zone, node, owner) for
 * ListBlockRanges; everything ListBlocks reports for ListBlockRuns, so that its runs expand back
 * into ListBlocks' rows exactly. */
static bool same_run(const Model *model, const Block *a, const Block *b, bool everything) {
        if (a->state != b->state || a->zone != b->zone || a->nid != b->nid || a->owner != b->owner)
                return false;
        if (!everything)
                return true;
        return (a->state != BLOCK_OFFLINE || a->valid_zones == b->valid_zones) &&
               a->device == b->device;
}

static int append_run(sd_bus_message *reply, const Model *model, const Block *b, uint64_t start, uint64_t count,
                      bool everything) {
        char zones[64];

        if (!everything)
                return sd_bus_message_append(reply, "(ttsiss)", start, count, block_state_to_string(b->state),
                                             (int32_t) b->nid, zone_to_string(b->zone), owner_to_string(b->owner));
        return sd_bus_message_append(reply, "(ttsissss)", start, count, block_state_to_string(b->state), (int32_t) b->nid,
                                     zone_to_string(b->zone),
                                     b->state == BLOCK_OFFLINE ? valid_zones_string(b, zones) : zone_to_string(b->zone),
                                     owner_to_string(b->owner), device_name(model, b));
}

static int list_runs(sd_bus_message *message, Manager *m, bool everything, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const Model *model = m->model;
        int32_t node;
        const Block *first = NULL;
        uint64_t start = 0, count = 0;
        int r;

        r = read_node_filter(message, m, &node, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', everything ? "(ttsissss)" : "(ttsiss)");
        if (r < 0)
                return r;
        for (uint64_t i = 0; i <= model->n_block_slots; i++) {
                const Block *b = i < model->n_block_slots ? &model->blocks[i] : NULL;

                if (b && (b->state == BLOCK_ABSENT || (node >= 0 && b->nid != node)))
                        b = NULL;
                if (first && b && start + count == i && same_run(model, first, b, everything)) {
                        count++;
                        continue;
                }
                if (first) {
                        r = append_run(reply, model, first, start, count, everything);
                        if (r < 0)
                                return r;
                }
                first = b;
                start = i;
                count = 1;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int method_list_block_ranges(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return list_runs(message, userdata, false, error);
}

int method_list_block_runs(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return list_runs(message, userdata, true, error);
}

/* ---- state changes ---------------------------------------------------------------------- */

static bool busy_test(ManagerBus *mb, uint64_t i) {
        return i / 64 < mb->n_busy_words && ((mb->busy_blocks[i / 64] >> (i % 64)) & 1);
}

static int busy_set(ManagerBus *mb, uint64_t i, bool b) {
        if (i / 64 >= mb->n_busy_words) {
                size_t n = MAX(i / 64 + 1, mb->n_busy_words * 2);
                uint64_t *p;

                if (!b)
                        return 0;
                p = realloc(mb->busy_blocks, n * sizeof(uint64_t));
                if (!p)
                        return -ENOMEM;
                memset(p + mb->n_busy_words, 0, (n - mb->n_busy_words) * sizeof(uint64_t));
                mb->busy_blocks = p;
                mb->n_busy_words = n;
        }
        if (b)
                mb->busy_blocks[i / 64] |= UINT64_C(1) << (i % 64);
        else
                mb->busy_blocks[i / 64] &= ~(UINT64_C(1) << (i % 64));
        return 0;
}

static BlockOp *block_op_free(BlockOp *op) {
        ManagerBus *mb;

        if (!op)
                return NULL;
        mb = manager_bus(op->manager);
        if (mb) {
                if (op->prev)
                        op->prev->next = op->next;
                else if (mb->block_ops == op)
                        mb->block_ops = op->next;
                if (op->next)
                        op->next->prev = op->prev;
                for (size_t i = 0; i < op->n_results; i++)
                        if (op->results[i].item >= 0)
                                (void) busy_set(mb, op->results[i].block, false);
        }
        for (size_t i = 0; i < op->n_results; i++)
                free(op->results[i].message);
        free(op->results);
        sd_bus_track_unref(op->track);
        sd_bus_message_unref(op->request);
        free(op);
        return NULL;
}

void block_ops_free_all(Manager *m) {
        ManagerBus *mb = manager_bus(m);

        while (mb && mb->block_ops)
                block_op_free(mb->block_ops);
}

static int result_set(BlockResult *res, const char *error, const char *format, ...) _printf_(3, 4);
static int result_set(BlockResult *res, const char *error, const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        free(res->message);
        res->message = s;
        res->error = error;
        return 0;
}

/* What the kernel's errno means for this write, as an error name and a sentence. */
static int result_from_errno(BlockResult *res, bool offline, int r, uint64_t timeout_usec) {
        uint64_t b = res->block;

        switch (r) {
        case 0:
                return result_set(res, NULL, "Memory block %" PRIu64 " is %s.", b, offline ? "offline" : "online");
        case -EBUSY:
                return result_set(res, HOTPLUG_ERROR_BUSY,
                                  offline ? "Memory block %" PRIu64 " could not be offlined: the kernel found unmovable pages (EBUSY); it stays online."
                                          : "Memory block %" PRIu64 " could not be onlined: busy (EBUSY).", b);
        case -EINVAL:
                return result_set(res, HOTPLUG_ERROR_INVALID_STATE,
                                  offline ? "The kernel refused to offline memory block %" PRIu64 " (EINVAL): it is not online, has holes, or spans several zones."
                                          : "The kernel refused to online memory block %" PRIu64 " (EINVAL): it is not offline or the zone is not allowed.", b);
        case -ETIMEDOUT:
                return result_set(res, HOTPLUG_ERROR_TIMEOUT,
                                  "Memory block %" PRIu64 " was not %s after %" PRIu64 " s; the write was interrupted and the block stays %s.",
                                  b, offline ? "offline" : "online", timeout_usec / 1000000, offline ? "online" : "offline");
        case -ECANCELED:
                return result_set(res, HOTPLUG_ERROR_CANCELLED, "Changing memory block %" PRIu64 " was cancelled.", b);
        case -EPERM:
                return result_set(res, HOTPLUG_ERROR_NOT_REMOVABLE,
                                  "The kernel does not allow memory block %" PRIu64 " to go %s (EPERM).", b, offline ? "offline" : "online");
        case -ENOENT:
                return result_set(res, HOTPLUG_ERROR_NO_SUCH_BLOCK, "Memory block %" PRIu64 " disappeared.", b);
        default:
                return result_set(res, HOTPLUG_ERROR_FAILED, "Failed to %s memory block %" PRIu64 ": %s.",
                                  offline ? "offline" : "online", b, strerror(-r));
        }
}

static int reply_results(BlockOp *op) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const BlockResult *first_failure = NULL;
        size_t n_failed = 0;
        int r;

        for (size_t i = 0; i < op->n_results; i++)
                if (op->results[i].error) {
                        n_failed++;
                        if (!first_failure)
                                first_failure = &op->results[i];
                }
        /* Nothing worked: a proper error, so single-block calls read like any other failure. */
        if (n_failed == op->n_results) {
                if (n_failed == 1)
                        return sd_bus_reply_method_errorf(op->request, first_failure->error, "%s", first_failure->message);
                return sd_bus_reply_method_errorf(op->request, first_failure->error, "All %zu memory blocks failed. %s",
                                                  n_failed, first_failure->message);
        }
        r = sd_bus_message_new_method_return(op->request, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(tss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < op->n_results; i++) {
                r = sd_bus_message_append(reply, "(tss)", op->results[i].block, op->results[i].error ?: "",
                                          op->results[i].message);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static void on_batch_done(WorkBatch *batch, void *userdata) {
        BlockOp *op = userdata;
        Manager *m = op->manager;
        size_t n_items;
        WorkItem *items = work_batch_items(batch, &n_items);
        int r;

        for (size_t i = 0; i < op->n_results; i++) {
                BlockResult *res = &op->results[i];
                const Block *b;

                if (res->item < 0)
                        continue;
                (void) result_from_errno(res, op->offline, items[res->item].result, op->timeout_usec);
                if (manager_bus(m)->shutting_down || !items[res->item].started)
                        continue;
                /* The kernel is the truth: read back what it made of the write. */
                b = model_block(m->model, res->block);
                if (b)
                        model_mark_dirty(m->model, b->nid);
                (void) scan_block(m->root, m->model, res->block);
                b = model_block(m->model, res->block);
                if (b)
                        model_mark_dirty(m->model, b->nid);
                log_struct(res->error ? LOG_WARNING : LOG_INFO,
                           LOG_FIELDS(.node = b ? b->nid : -1, .block = (int64_t) res->block,
                                      .extra = op->offline ? "HOTPLUGD_REQUEST=offline" : "HOTPLUGD_REQUEST=online"),
                           "%s (requested by %s)", res->message, strna(sd_bus_message_get_sender(op->request)));
        }
        op->batch = NULL;
        /* Release the blocks before answering, so a caller that retries at once is not "busy". */
        for (size_t i = 0; i < op->n_results; i++)
                if (op->results[i].item >= 0) {
                        (void) busy_set(manager_bus(m), op->results[i].block, false);
                        op->results[i].item = -1;
                }
        /* Settle derived state (spans, node masks) and announce it before the reply. */
        if (!manager_bus(m)->shutting_down && m->model->any_dirty)
                (void) manager_settle(m);
        r = reply_results(op);
        if (r < 0)
                log_debug_errno(r, "Failed to reply to %s, ignoring: %m", op->offline ? "OfflineBlocks" : "OnlineBlocks");
        block_op_free(op);
}

static int on_caller_gone(sd_bus_track *t, void *userdata) {
        BlockOp *op = userdata;

        if (op->batch) {
                log_info("Caller of %s disconnected: cancelling the remaining writes.",
                         op->offline ? "OfflineBlocks" : "OnlineBlocks");
                worker_cancel(op->manager->worker, op->batch);
        }
        op->track = sd_bus_track_unref(op->track);
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Reads "at", sorted and without duplicates, into a malloc'ed array. */
static int read_blocks(sd_bus_message *message, Manager *m, uint64_t **ret, size_t *ret_n, sd_bus_error *error) {
        _cleanup_free_ uint64_t *list = NULL;
        const void *p;
        size_t size, n, k = 0, n_missing = 0;
        uint64_t missing = 0;
        int r;

        r = sd_bus_message_read_array(message, 't', &p, &size);
        if (r < 0)
                return r;
        n = size / sizeof(uint64_t);
        if (n == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "No memory blocks given.");
        list = malloc(size);
        if (!list)
                return -ENOMEM;
        memcpy(list, p, size);
        qsort(list, n, sizeof(uint64_t), cmp_u64);
        for (size_t i = 0; i < n; i++)
                if (k == 0 || list[k - 1] != list[i])
                        list[k++] = list[i];
        for (size_t i = 0; i < k; i++)
                if (!model_block(m->model, list[i]) && n_missing++ == 0)
                        missing = list[i];
        if (n_missing == 1)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_BLOCK, "Memory block %" PRIu64 " does not exist.", missing);
        if (n_missing > 1)
                return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_BLOCK,
                                         "Memory block %" PRIu64 " and %zu more of the given blocks do not exist.", missing,
                                         n_missing - 1);
        *ret = TAKE_PTR(list);
        *ret_n = k;
        return 0;
}

static int zone_request(const char *s, const char **ret_value, Zone *ret_zone) {
        if (streq(s, "movable")) {
                *ret_value = "online_movable";
                *ret_zone = ZONE_MOVABLE;
        } else if (streq(s, "kernel")) {
                *ret_value = "online_kernel";
                *ret_zone = ZONE_NORMAL;
        } else if (streq(s, "auto")) {
                *ret_value = "online";
                *ret_zone = _ZONE_INVALID;
        } else
                return -EINVAL;
        return 0;
}

static bool zone_is_kernel(Zone z) {
        return z == ZONE_DMA || z == ZONE_DMA32 || z == ZONE_NORMAL || z == ZONE_HIGHMEM;
}

/* Decides, per block, whether to write and what; fills res and returns true if it must write. */
static bool plan_online(Manager *m, BlockResult *res, Zone want) {
        const Block *b = model_block(m->model, res->block);
        uint8_t kernel_mask = ZONE_MASK(ZONE_DMA) | ZONE_MASK(ZONE_DMA32) | ZONE_MASK(ZONE_NORMAL) | ZONE_MASK(ZONE_HIGHMEM);

        if (b->state == BLOCK_GOING_OFFLINE) {
                (void) result_set(res, HOTPLUG_ERROR_BUSY, "Memory block %" PRIu64 " is going offline right now.", res->block);
                return false;
        }
        if (b->state == BLOCK_ONLINE) {
                if (want == ZONE_MOVABLE && b->zone != ZONE_MOVABLE)
                        (void) result_set(res, HOTPLUG_ERROR_INVALID_ZONE,
                                          "Memory block %" PRIu64 " is already online, in zone %s, not Movable.", res->block,
                                          zone_to_string(b->zone));
                else if (want == ZONE_NORMAL && !zone_is_kernel(b->zone))
                        (void) result_set(res, HOTPLUG_ERROR_INVALID_ZONE,
                                          "Memory block %" PRIu64 " is already online, in zone %s, not a kernel zone.",
                                          res->block, zone_to_string(b->zone));
                else
                        (void) result_set(res, NULL, "Memory block %" PRIu64 " is already online (%s).", res->block,
                                          zone_to_string(b->zone));
                return false;
        }
        if (b->valid_zones != 0 && ((want == ZONE_MOVABLE && !(b->valid_zones & ZONE_MASK(ZONE_MOVABLE))) ||
                                    (want == ZONE_NORMAL && !(b->valid_zones & kernel_mask)))) {
                char zones[64] = "";
                size_t l = 0;

                for (Zone z = 0; z < _ZONE_MAX; z++)
                        if (b->valid_zones & ZONE_MASK(z))
                                l += (size_t) snprintf(zones + l, sizeof(zones) - l, "%s%s", l ? " " : "", zone_to_string(z));
                (void) result_set(res, HOTPLUG_ERROR_INVALID_ZONE,
                                  "Memory block %" PRIu64 " cannot go to zone %s (valid zones: %s).", res->block,
                                  want == ZONE_MOVABLE ? "Movable" : "Normal", zones);
                return false;
        }
        return true;
}

static bool plan_offline(Manager *m, BlockResult *res) {
        const Block *b = model_block(m->model, res->block);

        if (b->state == BLOCK_OFFLINE) {
                (void) result_set(res, NULL, "Memory block %" PRIu64 " is already offline.", res->block);
                return false;
        }
        if (b->state == BLOCK_GOING_OFFLINE) {
                (void) result_set(res, HOTPLUG_ERROR_BUSY, "Memory block %" PRIu64 " is already going offline.", res->block);
                return false;
        }
        if (b->zone == ZONE_NONE) {
                (void) result_set(res, HOTPLUG_ERROR_NOT_REMOVABLE,
                                  "Memory block %" PRIu64 " spans several zones or nodes and can never be offlined.", res->block);
                return false;
        }
        return true;
}

static int change_blocks(sd_bus_message *message, Manager *m, bool offline, sd_bus_error *error) {
        _cleanup_free_ uint64_t *blocks = NULL;
        _cleanup_free_ WorkItem *items = NULL;
        ManagerBus *mb = manager_bus(m);
        const char *zone = NULL, *value = "offline";
        Zone want = _ZONE_INVALID;
        BlockOp *op;
        size_t n = 0, n_items = 0;
        Worker *w;
        int r;

        /* 1. Arguments: malformed input and unknown blocks fail before anyone is asked. */
        r = read_blocks(message, m, &blocks, &n, error);
        if (r < 0)
                return r;
        if (!offline) {
                r = sd_bus_message_read(message, "s", &zone);
                if (r < 0)
                        return r;
                if (zone_request(zone, &value, &want) < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown zone '%s': expected movable, kernel or auto.", zone);
        }

        /* 2. Authorization (may return here later, with the same message). */
        r = manager_bus_verify(m, message, offline ? HOTPLUG_ACTION_OFFLINE_BLOCKS : HOTPLUG_ACTION_ONLINE_BLOCKS, NULL, error);
        if (r <= 0)
                return r == 0 ? 1 : r;

        /* 3. Whole-call refusals: nothing is written if any of these apply. */
        for (size_t i = 0; i < n; i++) {
                const Block *b = model_block(m->model, blocks[i]);

                if (!b)
                        return sd_bus_error_setf(error, HOTPLUG_ERROR_NO_SUCH_BLOCK, "Memory block %" PRIu64 " disappeared.",
                                                 blocks[i]);
                if (busy_test(mb, blocks[i]))
                        return sd_bus_error_setf(error, HOTPLUG_ERROR_BUSY,
                                                 "Memory block %" PRIu64 " is being changed by another request.", blocks[i]);
                if (!offline && b->state == BLOCK_OFFLINE && manager_node_is_quarantined(m, b->nid))
                        return sd_bus_error_setf(error, HOTPLUG_ERROR_QUARANTINED,
                                                 "Node %d is quarantined: unquarantine it before onlining its memory (block %" PRIu64 ").",
                                                 b->nid, blocks[i]);
        }

        /* 4. Per block: already there, not possible, or a write for the worker. */
        op = calloc(1, sizeof(BlockOp));
        if (!op)
                return -ENOMEM;
        op->manager = m;
        op->offline = offline;
        /* Offline writes wait as long as BlockTimeoutSec= lets a retire wait; onlining is quick. */
        op->timeout_usec = offline ? m->config.block_timeout_usec : ONLINE_TIMEOUT_USEC;
        op->request = sd_bus_message_ref(message);
        op->next = mb->block_ops;
        if (mb->block_ops)
                mb->block_ops->prev = op;
        mb->block_ops = op;
        op->results = calloc(n, sizeof(BlockResult));
        items = calloc(n, sizeof(WorkItem));
        if (!op->results || !items) {
                block_op_free(op);
                return -ENOMEM;
        }
        op->n_results = n;
        for (size_t i = 0; i < n; i++) {
                BlockResult *res = &op->results[i];

                res->block = blocks[i];
                res->item = -1;
                if (!(offline ? plan_offline(m, res) : plan_online(m, res, want)))
                        continue;
                WorkItem *it = &items[n_items];
                (void) xsprintf(it->path, "memory%" PRIu64 "/state", blocks[i]);
                (void) xsprintf(it->value, "%s", value);
                it->timeout_usec = op->timeout_usec;
                it->tag = blocks[i];
                res->item = (ssize_t) n_items++;
        }
        if (n_items == 0) {
                r = reply_results(op);
                block_op_free(op);
                return r < 0 ? r : 1;
        }

        /* 5. Hand the writes to the worker; the reply goes out when it is done. */
        r = manager_get_worker(m, &w);
        if (r >= 0)
                r = worker_submit(w, items, n_items, NULL, on_batch_done, op, &op->batch);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        op->results[i].item = -1;
                block_op_free(op);
                return sd_bus_error_set_errnof(error, r, "Failed to queue the writes: %m");
        }
        for (size_t i = 0; i < n; i++)
                if (op->results[i].item >= 0)
                        (void) busy_set(mb, op->results[i].block, true);
        if (sd_bus_track_new(sd_bus_message_get_bus(message), &op->track, on_caller_gone, op) >= 0 &&
            sd_bus_track_add_sender(op->track, message) < 0)
                op->track = sd_bus_track_unref(op->track);
        log_debug("%s: %zu writes queued for %s.", offline ? "OfflineBlocks" : "OnlineBlocks", n_items,
                  strna(sd_bus_message_get_sender(message)));
        return 1;
}

int method_online_blocks(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return change_blocks(message, userdata, false, error);
}

int method_offline_blocks(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return change_blocks(message, userdata, true, error);
}
