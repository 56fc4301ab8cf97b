#!/usr/bin/env bash
# Run a script as root inside the fresh root ROOT, from inside new mount, UTS and PID namespaces
# (tests/fresh/run.sh starts this under `unshare`): the root gets its own /proc, /sys, /run and
# /tmp, this machine's /dev, and an environment as clean as a new machine's.
# Usage: enter.sh ROOT SCRIPT
set -euo pipefail
R=$1
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sys "$R/sys"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
mount --rbind /dev "$R/dev"
hostname fresh-debian
# A new machine has none of this one's environment (pip settings, paths): start clean.
exec chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "$2"
