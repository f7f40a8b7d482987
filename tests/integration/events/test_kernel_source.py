# SPDX-License-Identifier: LGPL-2.1-or-later
"""EventSource=kernel: the daemon listens to the kernel's uevent group (1) instead of udevd's.

Events are injected through the namespace's own kernel uevent socket (uevent-inject --kernel-relay,
the kernel's uevent_net_rcv): they arrive from port id 0 with a kernel SEQNUM, exactly like kernel
events. A forged kernel-group message from a userspace port (--kernel) must be ignored."""

from conftest import block_of, node_of
from test_blocks import all_of, expect_block, expect_node

MEM = "/devices/system/memory/memory%d"


def test_kernel_event_source(hp):
    h = hp(policy="offline", event_source="kernel")
    n0 = node_of(h.live_model(), 0)

    # A forgery first: block 9 exists in the tree, but its "kernel" event comes from a user port.
    h.tree.add_block(h.root, 9, node=0)
    h.inject_lines(["add %s memory" % (MEM % 9)], extra_args=["--kernel"])
    # Then the real thing for block 8, through the kernel.
    h.tree.add_block(h.root, 8, node=0)
    h.inject_lines(["add %s memory" % (MEM % 8)], extra_args=["--kernel-relay"])
    live = h.wait_model(all_of(expect_block(8, state="offline", nodes=[0]),
                               expect_node(id=0, blocks=n0["blocks"] + 1)),
                        "after a kernel add event for memory8")
    assert block_of(live, 9) is None, "hotplugd accepted a kernel-group uevent forged from a userspace port"

    h.tree.set_block_state(h.root, 8, "online", zone="Movable")
    h.inject_lines(["online %s memory" % (MEM % 8)], extra_args=["--kernel-relay"])
    h.wait_model(expect_block(8, state="online", zone="Movable"), "after a kernel online event for memory8")
    # Block 9 legitimately announced now: the model then equals a fresh scan.
    h.inject_lines(["add %s memory" % (MEM % 9)], extra_args=["--kernel-relay"])
    h.wait_converged()
