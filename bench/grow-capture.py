#!/usr/bin/env python3
"""Grows a capture for scale benchmarks: repeats a real capture's flows as
later runs, each copy shifted in time, with fresh flow ids, client ports,
upload ids and tokens, so that no two copies link to each other.

    bench/grow-capture.py captures/parallel-clients.jsonl 100000 > /tmp/big.jsonl
"""
import json
import re
import sys

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
JWT = re.compile(r"(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.)([A-Za-z0-9_-]+)")


def main():
    source, wanted = sys.argv[1], int(sys.argv[2])
    with open(source, encoding="utf-8") as f:
        header = f.readline()
        lines = [line for line in f if line.strip()]
    flows = [json.loads(line) for line in lines]
    if not flows:
        sys.exit(f"{source}: no flows")
    start = min(f["timing"]["request_start"] for f in flows)
    end = max(
        max(v for v in f["timing"].values() if isinstance(v, int)) for f in flows
    )
    span = end - start + 1_000_000_000  # a second between copies
    out = sys.stdout
    out.write(header)
    written = 0
    copy = 0
    while written < wanted:
        shift = copy * span
        marker = f"{copy:08x}"
        for flow in flows:
            if written >= wanted:
                break
            text = json.dumps(flow)
            # Fresh upload ids and tokens: a per-copy prefix on every UUID
            # and on the tokens' signatures.
            text = UUID.sub(lambda m: marker + m.group(0)[8:], text)
            text = JWT.sub(lambda m: m.group(1) + marker + m.group(2), text)
            f = json.loads(text)
            f["id"] = written + 1
            for k, v in f["timing"].items():
                if isinstance(v, int):
                    f["timing"][k] = v + shift
            if f.get("client_addr"):
                ip, _, port = f["client_addr"].rpartition(":")
                f["client_addr"] = f"{ip}:{(int(port) + copy * 7) % 60000 + 1024}"
            out.write(json.dumps(f, separators=(",", ":")) + "\n")
            written += 1
        copy += 1


if __name__ == "__main__":
    main()
