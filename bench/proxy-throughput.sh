#!/usr/bin/env bash
# Throughput of `regtap proxy` against the lab's distribution over TLS, in one
# invocation and interleaved per repetition (direct, regtap, mitmproxy,
# direct, …): raw monolithic blob upload and blob download with curl over
# HTTP/1.1 and HTTP/2, dockerd push and pull of an image of pseudo-random
# layers, and skopeo copy of it from the registry and back. Prints, per
# transfer and route, the median and min–max time, the ratio to direct
# (speed for raw transfers, time for clients), the proxy's CPU-s per GiB and
# each proxy's peak RSS. Goals for regtap: raw ≥ 0.95× direct speed; dockerd
# and skopeo ≤ 1.05× direct time and no worse than mitmproxy; RSS ≤ 32 MiB.
#
# Usage: bench/proxy-throughput.sh [MIB] [REPS]   (defaults 512, 3)
# Needs root and the lab's programs (dockerd, docker-registry, skopeo, curl),
# like the end-to-end tests. mitmproxy (with stream_large_bodies=1m) is
# installed from PyPI on first use into $REGTAP_BENCH_VENV (default
# /tmp/regtap-bench-mitmproxy); if that fails its rows are skipped with a
# warning. REGTAP_BENCH_NO_MITM=1 skips them on purpose.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
set -m # the benchmark runs in its own process group, so cleanup reaches its children
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mib="${1:-512}"
reps="${2:-3}"
venv="${REGTAP_BENCH_VENV:-/tmp/regtap-bench-mitmproxy}"

mitm_args=()
if [[ "${REGTAP_BENCH_NO_MITM:-}" == 1 ]]; then
    echo "mitmproxy baseline skipped (REGTAP_BENCH_NO_MITM=1)" >&2
else
    if [[ ! -x "$venv/bin/mitmdump" ]]; then
        echo "installing mitmproxy into $venv ..." >&2
        python3 -m venv "$venv" >&2 && "$venv/bin/pip" install --quiet mitmproxy >&2 || true
    fi
    if version="$("$venv/bin/mitmdump" --version 2>/dev/null)"; then
        echo "${version%%$'\n'*}"
        mitm_args=("$venv/bin/mitmdump")
    else
        echo "######## WARNING: mitmproxy could not be installed into $venv;" >&2
        echo "######## the mitmproxy baseline is SKIPPED in this run." >&2
    fi
fi

cargo build --release --quiet -p regtap --bin regtap
cargo build --release --quiet -p regtap-lab --example registry_bench

bench_pid=
cleanup() {
    if [[ -n "$bench_pid" ]]; then
        kill -- "-$bench_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$target/release/examples/registry_bench" "$target/release/regtap" "$mib" "$reps" "${mitm_args[@]}" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
exit "$status"
