#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tools/setup.sh — installs what building, testing and the demo need, from Debian's packages.
# Idempotent: asks apt only when something is missing. Run as root on Debian 12.
set -euo pipefail

PACKAGES=(
        # build
        meson ninja-build pkg-config gcc clang libclang-rt-14-dev libc6-dev
        libsystemd-dev libudev-dev libnuma-dev libinih-dev
        # docs and policy validation
        scdoc libxml2-utils
        # bus and integration tests (Debian's Python, /usr/bin/python3)
        python3 python3-pytest python3-dbusmock python3-gi dbus polkitd util-linux strace
        # the real-kernel test bed
        qemu-system-x86 busybox-static kmod udev cpio
)

missing=()
for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
        if [[ $(id -u) -ne 0 ]]; then
                echo "setup: missing packages ${missing[*]}; run as root to install them." >&2
                exit 1
        fi
        echo "setup: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
