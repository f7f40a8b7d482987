/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* node-dbus.h — one org.hotplugd.Hotplug1.Node object per NUMA node the model knows. */
#pragma once

#include <systemd/sd-bus.h>

#include "manager.h"

extern const sd_bus_vtable node_vtable[];

int node_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                     sd_bus_error *error);
int node_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error);

/* Announces nodes that appeared or vanished (NodeAdded/NodeRemoved) and emits one
 * PropertiesChanged per changed node listing only the properties whose values differ from the
 * last emission. Returns whether the set of nodes changed. */
bool node_bus_flush(Manager *m);
struct NodeSnapshot *node_snapshots_new(void);
/* Records the current values of every exported node without emitting anything (at setup). */
void node_bus_snapshot_all(Manager *m);
