/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* blocks-dbus.h — the Manager's block methods: listing (fast, one reply) and state changes. */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

int method_list_blocks(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_list_block_ranges(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_list_block_runs(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_online_blocks(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_offline_blocks(sd_bus_message *message, void *userdata, sd_bus_error *error);

/* At shutdown, after the worker has ended every batch: frees what is left. */
void block_ops_free_all(Manager *m);
