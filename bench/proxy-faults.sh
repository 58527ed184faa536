#!/usr/bin/env bash
# Load and fault figures for `regtap proxy` (release build), each scenario
# against a fresh proxy process on 127.0.0.1 with a local TLS upstream:
#   load    50 parallel 64 MiB uploads + 10,000 small requests: exchanges made
#           vs recorded, peak RSS (VmHWM), CPU seconds
#   idle    1,000 clients that never send a request, shed by
#           --request-head-timeout 5: how many closed, when, recorded
#   fd      RLIMIT_NOFILE 256 with 400 idle clients for 8 s: CPU burnt and
#           stderr written meanwhile, and whether it serves afterwards
#   fsize   RLIMIT_FSIZE 32 KiB on the capture, 30 uploads: answered vs
#           forwarded vs recorded, fragments, exit status
#   kill-9  4 uploads in flight when the proxy is killed: what the capture holds
#
# Usage: bench/proxy-faults.sh [UPLOADS UPLOAD_MIB SMALL_REQUESTS IDLE_CLIENTS]
#        (defaults 50 64 10000 1000)
set -euo pipefail
set -m # the benchmark runs in its own process group, so cleanup reaches its children
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

cargo build --release --quiet -p regtap --bin regtap
cargo build --release --quiet -p regtap-proxy --example faults

bench_pid=
cleanup() {
    if [[ -n "$bench_pid" ]]; then
        kill -- "-$bench_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# 1,000 idle clients plus the upstream's side need more than the usual 1024.
ulimit -n 8192 2>/dev/null || true
"$target/release/examples/faults" "$target/release/regtap" "$@" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
exit "$status"
