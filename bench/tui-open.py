#!/usr/bin/env python3
"""How long `regtap tui CAPTURE` takes to show its first frame and its first
operation, in a real pseudo-terminal (200x50), as a user sees it, and its
peak RSS.

    bench/tui-open.py [--runs N] [--operation TEXT] BINARY CAPTURE...

Each BINARY is run N times (default 3), interleaved, on the same capture;
the median of each is printed (peak RSS: the largest). The first operation is taken to be shown when
TEXT (default "push lab/", a title of the captures bench/grow-capture.py
grows from captures/parallel-clients.jsonl) is on the screen.
"""
import argparse
import fcntl
import os
import pty
import re
import select
import signal
import statistics
import struct
import sys
import termios
import time

TIMEOUT = 120.0


def open_once(binary, capture, operation):
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execv(binary, [binary, "tui", capture])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    screen, first, shown = b"", None, None
    while time.monotonic() - start < TIMEOUT and shown is None:
        ready, _, _ = select.select([fd], [], [], 0.02)
        if not ready:
            continue
        try:
            screen += os.read(fd, 1 << 16)
        except OSError:
            break
        text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", screen)
        now = time.monotonic() - start
        if first is None and b"flows" in text:
            first = now
        if first is not None and operation.encode() in text:
            shown = now
    os.write(fd, b"q")
    time.sleep(0.3)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, _, usage = os.wait4(pid, 0)
    os.close(fd)
    if shown is None:
        sys.exit(f"{binary}: no operation {operation!r} within {TIMEOUT:.0f} s")
    return first, shown, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--operation", default="push lab/")
    parser.add_argument("binaries", nargs="+", metavar="BINARY")
    parser.add_argument("capture")
    args = parser.parse_args()
    times = {binary: [] for binary in args.binaries}
    for _ in range(args.runs):
        for binary in args.binaries:
            times[binary].append(open_once(binary, args.capture, args.operation))
    print(f"{'binary':<40} {'first frame s':>14} {'operations s':>13} {'peak RSS MiB':>13}")
    for binary, runs in times.items():
        first = statistics.median(r[0] for r in runs)
        shown = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        print(f"{binary:<40} {first:>14.2f} {shown:>13.2f} {rss:>13.0f}")


if __name__ == "__main__":
    main()
