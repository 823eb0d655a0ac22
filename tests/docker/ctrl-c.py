#!/usr/bin/env python3
"""Run a command on a new pseudo-terminal, as a user's interactive shell would, type
Ctrl-C once MARKER has been printed, and report what the terminal showed.

    ctrl-c.py TIMEOUT MARKER COMMAND [ARGS...]

Prints everything the command wrote to the terminal, then exits with the command's
exit status (128 + N if it died of signal N), or 124 when it outlived TIMEOUT seconds
(it is then killed)."""
import os
import pty
import select
import signal
import sys
import time


def main():
    timeout, marker, command = float(sys.argv[1]), sys.argv[2].encode(), sys.argv[3:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    deadline = time.monotonic() + timeout
    seen, sent = b"", False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not sent and marker in seen:
            os.write(fd, b"\x03")  # what pressing Ctrl-C sends
            sent = True
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(seen.decode(errors="replace"))
    sys.stdout.flush()
    if time.monotonic() >= deadline:
        sys.exit(124)
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    sys.exit(os.WEXITSTATUS(status))


main()
