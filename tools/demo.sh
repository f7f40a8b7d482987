#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tools/demo.sh — the main job, on a real kernel: a QEMU guest (Debian's kernel under TCG) runs the
# build's hotplugd as its hotplugd.service; two DIMMs are hot-plugged into the guest's empty NUMA
# node, hotplugd onlines them movable, and `hotplugctl retire-node` drains them (migrating a
# process's data), ejects them and leaves the node offline. Only the guest's memory is touched; the
# guest is always torn down. tools/demo-tree.sh shows the model on a generated host (no QEMU).
#   BUILD=dir   meson build directory to use (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { printf '\ndemo failed: step "%s"; see %s\n' "$1" "$2" >&2; exit 1; }

BUILD=${BUILD:-build}
mkdir -p "$BUILD"
bash tools/setup.sh >"$BUILD/demo-setup.log" 2>&1 || { cat "$BUILD/demo-setup.log" >&2; fail "install the packages (tools/setup.sh)" "$BUILD/demo-setup.log"; }
if [[ ! -f $BUILD/build.ninja ]]; then
        meson setup "$BUILD" >"$BUILD/demo-meson-setup.log" 2>&1 || fail "meson setup $BUILD" "$BUILD/demo-meson-setup.log"
fi
ninja -C "$BUILD" >"$BUILD/demo-ninja.log" 2>&1 || { tail -30 "$BUILD/demo-ninja.log" >&2; fail "build (ninja -C $BUILD)" "$BUILD/demo-ninja.log"; }

exec /usr/bin/python3 tools/demo_vm.py "$BUILD"
