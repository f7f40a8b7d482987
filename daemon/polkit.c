/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polkit.c — CheckAuthorization without blocking the loop, in the style of systemd's bus-polkit. */
#include <linux/capability.h>

#include "log.h"
#include "polkit.h"

/*
 * How a method gets authorized without waiting
 * --------------------------------------------
 * A handler that changes anything calls polkit_verify_async() first. The first time a message
 * comes through, there is no answer yet: a CheckAuthorization call goes to polkit with
 * sd_bus_call_async(), a query keyed by (message, action) is stored here holding a reference to
 * the message, and the handler returns 1 — sd-bus then sends no reply, the call stays open. When
 * polkit answers (it may take minutes: the user is typing a password), the answer is stored in
 * the query and the *same* message is put back into the connection's read queue with
 * sd_bus_enqueue_for_read(). sd-bus dispatches it again to the same handler, which calls
 * polkit_verify_async() again: this time the query is found, consumed, and the verdict returned.
 * Handlers must therefore be idempotent up to the verification point, which they are if they
 * only validate arguments before it.
 *
 * If the caller disconnects while polkit thinks, the bus says so (NameOwnerChanged): a query still
 * waiting for polkit is dropped (dropping the slot cancels the pending call); one whose answer is
 * already queued is marked, so the re-dispatch refuses instead of acting on behalf of a caller that
 * is gone. One match for all callers, not an sd_bus_track per query: every track installs a match
 * rule on the bus, the bus allows 512 per connection, and sd-bus drops the whole connection when a
 * match cannot be added — a user with a few hundred calls waiting for polkit would have taken
 * hotplugd off the bus.
 *
 * A re-dispatched method may also return before it asks again (the node or block it named went away
 * while polkit thought): its answered query would stay forever. A filter sees every message before
 * it is dispatched, the re-dispatched ones included; a query whose message went through the filter
 * and is still here when the next message comes was not consumed, and is dropped then.
 */

#define POLKIT_TIMEOUT_USEC (UINT64_C(25) * 60 * 1000 * 1000) /* interactive: a person may be slow */

typedef struct AsyncQuery {
        PolkitRegistry *registry;
        sd_bus_message *request;
        char *action;
        sd_bus_slot *slot;              /* the pending CheckAuthorization call */
        sd_bus_message *reply;          /* polkit's answer */
        sd_bus_error error;             /* or why there is none */
        bool answered;
        bool caller_gone;
        bool redispatched;              /* its message went through the filter again */
        struct AsyncQuery *next, *prev;
} AsyncQuery;

struct PolkitRegistry {
        sd_bus *bus;
        sd_bus_slot *name_slot;         /* NameOwnerChanged, while queries wait: callers that go away */
        sd_bus_slot *filter_slot;       /* every incoming message: queries not consumed */
        AsyncQuery *queries;
        size_t n_queries, n_answered;
        bool always_query;
};

static AsyncQuery *async_query_free(AsyncQuery *q) {
        if (!q)
                return NULL;
        if (q->registry) {
                if (q->prev)
                        q->prev->next = q->next;
                else
                        q->registry->queries = q->next;
                if (q->next)
                        q->next->prev = q->prev;
                q->registry->n_queries--;
                if (q->answered)
                        q->registry->n_answered--;
                /* Nobody to watch for: no NameOwnerChanged traffic while nothing waits for polkit. */
                if (q->registry->n_queries == 0)
                        q->registry->name_slot = sd_bus_slot_unref(q->registry->name_slot);
        }
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->request);
        sd_bus_message_unref(q->reply);
        sd_bus_error_free(&q->error);
        free(q->action);
        free(q);
        return NULL;
}

PolkitRegistry *polkit_registry_free(PolkitRegistry *reg) {
        if (!reg)
                return NULL;
        while (reg->queries)
                async_query_free(reg->queries);
        sd_bus_slot_unref(reg->name_slot);
        sd_bus_slot_unref(reg->filter_slot);
        sd_bus_unref(reg->bus);
        free(reg);
        return NULL;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        PolkitRegistry *reg = userdata;
        const char *name, *old_owner, *new_owner;
        AsyncQuery *next;

        if (reg->n_queries == 0 || sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] != ':' || (new_owner && new_owner[0]))
                return 0;
        for (AsyncQuery *q = reg->queries; q; q = next) {
                next = q->next;
                if (!streq_ptr(sd_bus_message_get_sender(q->request), name))
                        continue;
                log_debug("Caller of %s went away while polkit was asked about %s.",
                          strna(sd_bus_message_get_member(q->request)), q->action);
                if (!q->answered)
                        async_query_free(q);
                else
                        q->caller_gone = true;
        }
        return 0;
}

static int on_incoming(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        PolkitRegistry *reg = userdata;
        AsyncQuery *next;

        if (reg->n_answered == 0)
                return 0;
        for (AsyncQuery *q = reg->queries; q; q = next) {
                next = q->next;
                if (q->redispatched) {
                        log_debug("%s returned without asking polkit again, dropping its answer.",
                                  strna(sd_bus_message_get_member(q->request)));
                        async_query_free(q);
                } else if (q->answered && q->request == m)
                        q->redispatched = true;
        }
        return 0;
}

int polkit_registry_new(sd_bus *bus, PolkitRegistry **ret) {
        _cleanup_(polkit_registry_freep) PolkitRegistry *reg = calloc(1, sizeof(PolkitRegistry));
        int r;

        if (!reg)
                return -ENOMEM;
        reg->bus = sd_bus_ref(bus);
        r = sd_bus_add_filter(bus, &reg->filter_slot, on_incoming, reg);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(reg);
        return 0;
}

void polkit_registry_set_always_query(PolkitRegistry *reg, bool b) {
        reg->always_query = b;
}

size_t polkit_registry_pending(PolkitRegistry *reg) {
        return reg ? reg->n_queries : 0;
}

static AsyncQuery *find_query(PolkitRegistry *reg, sd_bus_message *call, const char *action) {
        for (AsyncQuery *q = reg->queries; q; q = q->next)
                if (q->request == call && streq(q->action, action))
                        return q;
        return NULL;
}

static int on_check_authorization(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        AsyncQuery *q = userdata;
        const sd_bus_error *e;
        int r;

        q->slot = sd_bus_slot_unref(q->slot);
        q->answered = true;
        q->registry->n_answered++;
        e = sd_bus_message_get_error(reply);
        if (e)
                (void) sd_bus_error_copy(&q->error, e);
        else
                q->reply = sd_bus_message_ref(reply);

        /* Run the method again with the same message: now the answer is here. */
        r = sd_bus_enqueue_for_read(q->registry->bus, q->request);
        if (r < 0) {
                log_warning_errno(r, "Failed to re-dispatch %s after authorization: %m",
                                  strna(sd_bus_message_get_member(q->request)));
                (void) sd_bus_reply_method_errnof(q->request, r, "Failed to re-dispatch the call after authorization: %m");
                async_query_free(q);
        }
        return 1;
}

static int append_details(sd_bus_message *m, const char *const *details) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        for (const char *const *d = details; d && d[0] && d[1]; d += 2) {
                r = sd_bus_message_append(m, "{ss}", d[0], d[1]);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* The verdict of an answered query: 1 or negative errno with error set. */
static int query_verdict(AsyncQuery *q, sd_bus_error *error) {
        int authorized, challenge, r;

        if (q->caller_gone)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "The caller disconnected.");
        if (sd_bus_error_is_set(&q->error)) {
                /* No polkit, or polkit failed: deny, never allow by default. */
                log_warning("polkit did not answer for %s: %s", q->action, q->error.message ?: q->error.name);
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Authorization for %s could not be checked (polkit: %s).", q->action,
                                         q->error.message ?: q->error.name);
        }
        r = sd_bus_message_enter_container(q->reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(q->reply, "bb", &authorized, &challenge);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Authorization for %s could not be checked (bad answer from polkit).",
                                         q->action);
        if (authorized)
                return 1;
        if (challenge)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                         "Authentication is required for %s.", q->action);
        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Not authorized to %s (%s).",
                                 sd_bus_message_get_member(q->request), q->action);
}

int polkit_verify_async(PolkitRegistry *reg, sd_bus_message *call, const char *action, const char *const *details,
                        sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *pk = NULL;
        const char *sender;
        AsyncQuery *q;
        int r;

        /* Second time round: polkit has answered. */
        q = find_query(reg, call, action);
        if (q) {
                if (!q->answered)
                        return 0; /* dispatched again before the answer (should not happen): keep waiting */
                r = query_verdict(q, error);
                async_query_free(q);
                return r;
        }

        if (!reg->always_query) {
                r = sd_bus_query_sender_privilege(call, CAP_SYS_ADMIN);
                if (r > 0)
                        return 1;
        }

        sender = sd_bus_message_get_sender(call);
        if (!sender)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                         "Not authorized to %s: peer-to-peer callers need CAP_SYS_ADMIN.",
                                         sd_bus_message_get_member(call));

        q = calloc(1, sizeof(AsyncQuery));
        if (!q)
                return -ENOMEM;
        q->request = sd_bus_message_ref(call);
        q->action = strdup(action);
        q->registry = reg;
        q->next = reg->queries;
        if (reg->queries)
                reg->queries->prev = q;
        reg->queries = q;
        reg->n_queries++;
        if (!q->action) {
                async_query_free(q);
                return -ENOMEM;
        }

        r = sd_bus_message_new_method_call(reg->bus, &pk, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(pk, "(sa{sv})s", "system-bus-name", 1, "name", "s", sender, action);
        if (r >= 0)
                r = append_details(pk, details);
        /* flags: 1 = AllowUserInteraction, only if the caller said it can wait for a password. */
        if (r >= 0)
                r = sd_bus_message_append(pk, "us", (uint32_t) (sd_bus_message_get_allow_interactive_authorization(call) > 0),
                                          "");
        /* The match goes out before the question: the bus handles our messages in order, so a caller
         * that leaves while polkit thinks is seen. (One that left before it was is refused by polkit.) */
        if (r >= 0 && !reg->name_slot && sd_bus_is_bus_client(reg->bus) > 0)
                r = sd_bus_match_signal_async(reg->bus, &reg->name_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                              "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, NULL,
                                              reg);
        if (r >= 0)
                r = sd_bus_call_async(reg->bus, &q->slot, pk, on_check_authorization, q, POLKIT_TIMEOUT_USEC);
        if (r < 0) {
                async_query_free(q);
                return r;
        }
        return 0;
}
