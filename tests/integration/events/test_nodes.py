# SPDX-License-Identifier: LGPL-2.1-or-later
"""NUMA node and CPU uevents: a node that gets its first memory (kernel order: memory add events, node
add, then the node<->memory links), a node going away after its last memory, CPUs going offline/online
and being hot-added/removed on a node."""

import time

from conftest import BLOCK_SIZE, PAGES_PER_BLOCK, node_of
from test_blocks import all_of, expect_block, expect_no_block, expect_node

MEM = "/devices/system/memory/memory%d"
NODE = "/devices/system/node/node%d"
CPU = "/devices/system/cpu/cpu%d"


def dimm_node_spec(tree):
    """Node 0 with CPUs and memory; node 2 a CPU-less node holding two offline hot-plugged blocks
    (an ACPI DIMM); nodes 1 and 3 possible but offline."""
    return (tree.Spec(block_size=BLOCK_SIZE, possible_nodes=[0, 1, 2, 3])
            .node(0, cpus=[0, 1])
            .node(1, online=False)
            .node(2)
            .node(3, online=False)
            .blocks(0, 6, 0, state="online", zone="Normal")
            .blocks(6, 2, 0, state="offline", valid_zones="Normal Movable")
            .blocks(32, 2, 2, state="offline", valid_zones="Movable Normal", owner="acpi", device="PNP0C80:01")
            .to_dict())


def test_node_add_with_first_memory(hp):
    """Hot-add of a DIMM into an empty node, in the kernel's order (kernel-abi §3.1): memoryN `add`
    for each block while no nodeX link exists, node `add`, then the links appear (no event)."""
    h = hp(policy="offline")
    tree = h.tree
    assert node_of(h.live_model(), 3) is None or not node_of(h.live_model(), 3)["online"]

    # (1) add_memory_resource: the block devices, no node links yet.
    for i in (40, 41):
        tree.add_block(h.root, i, node=3, owner=("acpi", "PNP0C80:05"), link=False)
    h.inject_lines(["add %s memory" % (MEM % i) for i in (40, 41)])
    # (2) the node comes online: nodeN directory, masks; its add event.
    tree.add_node(h.root, 3)
    h.inject("add", NODE % 3, "node")
    # (3) register_memory_blocks_under_node_hotplug: the links, no event.
    for i in (40, 41):
        tree.link_block(h.root, i, 3)

    h.wait_model(all_of(
        expect_block(40, state="offline", nodes=[3], owner="acpi", device="PNP0C80:05"),
        expect_block(41, state="offline", nodes=[3], owner="acpi", device="PNP0C80:05"),
        expect_node(id=3, online=True, blocks=2, offline_blocks=2, online_blocks=0, spanned_pages=0,
                    present_cpus=[], can_offline=False, offline_blockers=["has-blocks"])),
        "after DIMM hot-add into node 3")
    live, _ = h.wait_converged()
    # Node 0 is untouched by all this.
    assert node_of(live, 0)["blocks"] == 8


def test_node_add_late_links(hp):
    """Same order, but the links appear only 300 ms after the node add event (a slow kernel or a
    busy machine): the daemon must still end up with the right node."""
    h = hp(policy="offline")
    tree = h.tree
    tree.add_block(h.root, 40, node=3, link=False)
    h.inject("add", MEM % 40, "memory")
    tree.add_node(h.root, 3)
    h.inject("add", NODE % 3, "node")
    time.sleep(0.3)
    tree.link_block(h.root, 40, 3)
    h.wait_model(all_of(expect_block(40, nodes=[3]), expect_node(id=3, online=True, blocks=1, offline_blocks=1)),
                 "after late node links")
    h.wait_converged()


def test_node_add_then_online(hp):
    """The new node's blocks are onlined (Movable) afterwards: spans and has_memory follow."""
    h = hp(policy="offline")
    tree = h.tree
    tree.add_block(h.root, 40, node=3, link=False)
    h.inject("add", MEM % 40, "memory")
    tree.add_node(h.root, 3)
    h.inject("add", NODE % 3, "node")
    tree.link_block(h.root, 40, 3)
    h.wait_model(expect_node(id=3, online=True, blocks=1, has_memory=False), "after node 3 add")
    tree.set_block_state(h.root, 40, "online", zone="Movable")
    h.inject("online", MEM % 40, "memory")
    h.wait_model(expect_node(id=3, online=True, blocks=1, online_blocks=1, has_memory=True,
                             online_blocks_by_zone={"Movable": 1}, spanned_pages=PAGES_PER_BLOCK,
                             offline_blockers=["spans-pages", "has-blocks"]),
                 "after memory40 online in node 3")
    h.wait_converged()


def test_node_remove(hp):
    """Removal in the kernel's order: memoryN `remove` for each (offline) block, then node `remove`."""
    h = hp(spec=dimm_node_spec(hp_tree()), policy="offline")
    tree = h.tree
    n2 = node_of(h.live_model(), 2)
    assert n2 and n2["online"] and n2["blocks"] == 2 and n2["offline_blockers"] == ["has-blocks"], n2

    for i in (32, 33):
        tree.remove_block(h.root, i)
    h.inject_lines(["remove %s memory" % (MEM % i) for i in (32, 33)])
    h.wait_model(all_of(expect_no_block(32), expect_no_block(33),
                        expect_node(id=2, blocks=0, can_offline=True, offline_blockers=[])),
                 "after the DIMM's blocks were removed")
    tree.remove_node(h.root, 2)
    h.inject("remove", NODE % 2, "node")

    def node2_gone(model):
        n = node_of(model, 2)
        return ["node 2 still online in the live model: %s" % n] if n and n["online"] else []
    h.wait_model(node2_gone, "after node 2 remove")
    h.wait_converged()


def test_cpu_offline_online(hp):
    h = hp(policy="offline")
    n0 = node_of(h.live_model(), 0)
    assert n0["present_cpus"] == [0, 1] and n0["online_cpus"] == [0, 1], n0

    h.tree.set_cpu_online(h.root, 1, False)
    h.inject("offline", CPU % 1, "cpu", DRIVER="processor")
    h.wait_model(expect_node(id=0, present_cpus=[0, 1], online_cpus=[0],
                             offline_blockers=["spans-pages", "has-blocks", "has-cpus"]),
                 "after cpu1 offline")
    h.wait_converged()

    # Both CPUs of node 1 offline: still present, so the node keeps its has-cpus blocker.
    for c in (2, 3):
        h.tree.set_cpu_online(h.root, c, False)
    h.inject_lines(["offline %s cpu DRIVER=processor" % (CPU % c) for c in (2, 3)])
    h.wait_model(expect_node(id=1, present_cpus=[2, 3], online_cpus=[]), "after cpu2+3 offline")
    h.wait_converged()

    h.tree.set_cpu_online(h.root, 1, True)
    h.tree.set_cpu_online(h.root, 3, True)
    h.inject_lines(["online %s cpu DRIVER=processor" % (CPU % c) for c in (1, 3)])
    h.wait_model(all_of(expect_node(id=0, online_cpus=[0, 1]), expect_node(id=1, online_cpus=[3])),
                 "after cpu1+3 online")
    h.wait_converged()


def test_cpu_add_remove(hp):
    """A CPU hot-added to the CPU-less DIMM node and removed again: the has-cpus blocker follows."""
    h = hp(spec=dimm_node_spec(hp_tree()), policy="offline")
    h.tree.add_cpu(h.root, 4, 2, online=True)
    h.inject("add", CPU % 4, "cpu", DRIVER="processor")
    h.inject("online", CPU % 4, "cpu", DRIVER="processor")
    h.wait_model(expect_node(id=2, present_cpus=[4], online_cpus=[4], offline_blockers=["has-blocks", "has-cpus"]),
                 "after cpu4 add on node 2")
    h.wait_converged()

    h.tree.set_cpu_online(h.root, 4, False)
    h.inject("offline", CPU % 4, "cpu", DRIVER="processor")
    h.tree.remove_cpu(h.root, 4)
    h.inject("remove", CPU % 4, "cpu", DRIVER="processor")
    h.wait_model(expect_node(id=2, present_cpus=[], online_cpus=[], offline_blockers=["has-blocks"]),
                 "after cpu4 offline+remove")
    h.wait_converged()


def hp_tree():
    import conftest
    return conftest.gentree
