#!/usr/bin/env bash
# Throughput of `regtap proxy` versus a direct connection, in one run:
# 1 GiB upload and 1 GiB download against a local TLS upstream, each direct
# and through the proxy; prints MB/s, the proxied/direct ratio and the
# proxy's peak RSS (VmHWM). Targets: ratio >= 0.9, peak RSS <= 64 MiB.
#
# Usage: bench/proxy-throughput.sh [MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p regtap --bin regtap
cargo build --release --quiet -p regtap-proxy --example throughput
"$target/release/examples/throughput" "$target/release/regtap" "${1:-1024}"
