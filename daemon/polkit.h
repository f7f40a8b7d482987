/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polkit.h — asynchronous authorization of bus calls with polkit, re-dispatching the call. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "util.h"

typedef struct PolkitRegistry PolkitRegistry;

int polkit_registry_new(sd_bus *bus, PolkitRegistry **ret);
/* Drops every pending query; their callers get no reply (used at shutdown). */
PolkitRegistry *polkit_registry_free(PolkitRegistry *reg);
DEFINE_TRIVIAL_CLEANUP_FUNC(PolkitRegistry *, polkit_registry_free);

/* Ask polkit even for privileged callers (tests that run as root). */
void polkit_registry_set_always_query(PolkitRegistry *reg, bool b);
/* Queries sent and not yet consumed by their method. */
size_t polkit_registry_pending(PolkitRegistry *reg);

/* Call at the top of a method handler, before anything changes. Returns:
 *   1  authorized: go on;
 *   0  a query is on its way: return 1 from the handler and do nothing else; when polkit
 *      answers, sd-bus dispatches the same message again and this returns 1 or an error;
 *  <0  not authorized (AccessDenied, InteractiveAuthorizationRequired) or failed; error is set.
 * details: NULL or a NULL-terminated list of key, value pairs shown in the authentication
 * dialog. Callers with CAP_SYS_ADMIN are authorized without asking (unless always_query). */
int polkit_verify_async(PolkitRegistry *reg, sd_bus_message *call, const char *action, const char *const *details,
                        sd_bus_error *error);
