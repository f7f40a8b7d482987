#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tools/demo-tree.sh — the model on a generated host (tools/demo.sh shows the real kernel): hotplugd
# models a host whose NUMA node 1 just received two DIMMs, judges every node by the kernel's rule,
# onlines the new memory by policy, and drains the node again with hotplugctl. Nothing here touches
# this machine's memory: hotplugd runs with --root on a tree under a temporary directory, on a
# private D-Bus. Quick (seconds), and needs no QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh

BUILD=${BUILD:-build}
[[ -f $BUILD/build.ninja ]] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
HOTPLUGD=$BUILD/daemon/hotplugd
HOTPLUGCTL=$BUILD/client/hotplugctl

T=$(mktemp -d /tmp/hotplugd-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*" >&2; "$@"; }

say "1. A demo host: node 0 with CPUs; node 1 memory-less and CPU-less, with two freshly hot-added DIMMs (offline); node 2 with present but offline CPUs."
/usr/bin/python3 tests/gen-tree.py "$T/root" --spec tools/demo-host.json >/dev/null
mkdir -p "$T/root/etc/hotplugd"
printf '[Online]\nPolicy=online_movable\n' > "$T/root/etc/hotplugd/hotplugd.conf"
echo "   tree: $T/root (sysfs and procfs files written by tests/gen-tree.py); config: [Online] Policy=online_movable"

say "2. The model, each node's verdict by the kernel's rule (Fix try_offline_node()), and what the policy will do:"
run "$HOTPLUGD" --root "$T/root" --dump-model > "$T/model.json"
/usr/bin/python3 tools/show-model.py "$T/model.json"

say "3. hotplugd starts as a service would (on a private system bus): it onlines the new blocks movable."
cat > "$T/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=$T/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
CONF
dbus-daemon --config-file="$T/bus.conf" --nofork --print-address=3 3>"$T/address" 2>/dev/null & pids+=($!)
for _ in $(seq 100); do [[ -s $T/address ]] && break; sleep 0.05; done
export DBUS_SYSTEM_BUS_ADDRESS=$(head -1 "$T/address")
"$HOTPLUGD" --root "$T/root" 2>"$T/hotplugd.log" & pids+=($!)
for _ in $(seq 100); do "$HOTPLUGCTL" status >/dev/null 2>&1 && break; sleep 0.05; done
sleep 0.5
run "$HOTPLUGCTL" status
for i in 256 263 264 271; do
        printf '   memory%-4s state file now holds: %s\n' "$i" "$(cat "$T/root/sys/devices/system/memory/memory$i/state")"
done
echo "   (the kernel turns 'online_movable' into an online block in ZONE_MOVABLE; the real-kernel"
echo "    test bed in tests/vm/ shows it under QEMU)"

say "4. Playing the kernel for the demo: the blocks are now online in ZONE_MOVABLE."
/usr/bin/python3 - "$T/root" <<'PY'
import sys; sys.path.insert(0, "tests"); import gentree
for i in range(256, 272):
    gentree.set_block_state(sys.argv[1], i, "online", "Movable", update=False)
gentree.write_zoneinfo(sys.argv[1])
PY
# No uevents reach a generated tree: restart the daemon so that it reads the tree again.
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
"$HOTPLUGD" --root "$T/root" 2>>"$T/hotplugd.log" & pids[1]=$!
for _ in $(seq 100); do "$HOTPLUGCTL" status >/dev/null 2>&1 && break; sleep 0.05; done
run "$HOTPLUGCTL" list-nodes

say "5. Can node 1 be retired? The preflight (changes nothing):"
run "$HOTPLUGCTL" plan-retire 1 || true

say "6. Retire node 1: drain every block (movable first, highest address first), in a worker thread."
run "$HOTPLUGCTL" retire-node 1 --no-eject
run "$HOTPLUGCTL" list-blocks --node 1
echo "   (with the eject, the DIMMs leave and the kernel offlines the node itself: tests/vm/ proves"
echo "    it on a real kernel; 'hotplugctl retire-node 1' does all of it)"

say "7. hotplugd's log (journal fields when run under systemd):"
sed 's/^/   /' "$T/hotplugd.log" | tail -12
