#!/usr/bin/env bash
# Throughput of `regtap proxy` versus a direct connection and versus
# mitmproxy, in one run: upload and download against a local TLS upstream,
# each direct, through regtap and through `mitmdump` (with
# stream_large_bodies=1m, and in its default mode, which buffers whole
# bodies in memory and so runs at a smaller size); prints MB/s, the
# proxied/direct ratio and each proxy's peak RSS (VmHWM) and CPU time.
# Targets for regtap: ratio >= 0.9, peak RSS <= 64 MiB.
#
# Usage: bench/proxy-throughput.sh [MIB] [MITM_DEFAULT_MIB]   (defaults 1024, 256)
# REGTAP_BENCH_HTTP=2 makes the client speak HTTP/2 (to the upstream when
# direct, to the proxy when proxied), as Go clients such as crane do.
# mitmproxy is installed from PyPI on first use into $REGTAP_BENCH_VENV
# (default /tmp/regtap-bench-mitmproxy); if that fails, the mitmproxy rows
# are skipped with a warning. REGTAP_BENCH_NO_MITM=1 skips them on purpose.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
set -m # the benchmark runs in its own process group, so cleanup reaches its children
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mib="${1:-1024}"
mitm_default_mib="${2:-256}"
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
        mitm_args=("$venv/bin/mitmdump" "$mitm_default_mib")
    else
        echo "######## WARNING: mitmproxy could not be installed into $venv;" >&2
        echo "######## the mitmproxy baseline is SKIPPED in this run." >&2
    fi
fi

cargo build --release --quiet -p regtap --bin regtap
cargo build --release --quiet -p regtap-proxy --example throughput

bench_pid=
cleanup() {
    if [[ -n "$bench_pid" ]]; then
        kill -- "-$bench_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$target/release/examples/throughput" "$target/release/regtap" "$mib" "${mitm_args[@]}" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
exit "$status"
