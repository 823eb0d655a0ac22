#!/usr/bin/env python3
"""Writes the aarch64 VM's initramfs: a gzipped newc cpio, with no root and no cpio tool.

usage: mkinitramfs.py OUT.cpio.gz MCPINIT BUSYBOX VMDIR [TINI_STATIC]

/init and /checks.sh come from VMDIR, /checks.d/* from VMDIR/checks.d, /mcpinit and
/bin/busybox from the two binaries; /dev/console is made here (the kernel opens it
for init's stdio before /init runs). Times are 0, so the same inputs give the same bytes. TINI_STATIC (Debian's arm64 tini-static), when
given, becomes /tini-static for the side-by-side RSS measurement.
"""
import gzip
import os
import stat
import sys

out, mcpinit, busybox, vmdir = sys.argv[1:5]
entries = []  # (name, mode, data, rdev)


def add(name, mode, data=b"", rdev=(0, 0)):
    entries.append((name, mode, data, rdev))


for d in ["bin", "dev", "proc", "sys", "tmp", "checks.d"]:
    add(d, stat.S_IFDIR | 0o755)
add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))


def file(name, path):
    with open(path, "rb") as f:
        add(name, stat.S_IFREG | 0o755, f.read())


file("init", os.path.join(vmdir, "init"))
file("checks.sh", os.path.join(vmdir, "checks.sh"))
file("mcpinit", mcpinit)
file("bin/busybox", busybox)
if len(sys.argv) > 5 and sys.argv[5]:
    file("tini-static", sys.argv[5])
add("bin/sh", stat.S_IFLNK | 0o777, b"busybox")
hooks = os.path.join(vmdir, "checks.d")
for h in sorted(os.listdir(hooks)) if os.path.isdir(hooks) else []:
    p = os.path.join(hooks, h)
    if not h.startswith(".") and os.path.isfile(p) and os.access(p, os.X_OK):
        file("checks.d/" + h, p)

buf = bytearray()
for ino, (name, mode, data, (major, minor)) in enumerate(entries + [("TRAILER!!!", 0, b"", (0, 0))], 1):
    nm = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(nm), 0]
    buf += b"070701" + b"".join(b"%08X" % v for v in fields) + nm
    buf += b"\0" * (-len(buf) % 4) + data
    buf += b"\0" * (-len(buf) % 4)
with open(out, "wb") as f:
    f.write(gzip.compress(bytes(buf), mtime=0))
