#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), one
# after the other, and prints the executions of each. Corpora are seeded from
# captures/ and the HAR fixtures first (fuzz/corpus/<target>, not committed);
# crashes land in fuzz/artifacts/<target>/ and make the script exit 1.
#
#   bench/fuzz.sh 120            # needs the nightly toolchain and cargo-fuzz
#   bench/fuzz.sh 600 jwt state  # only these targets
#   FUZZ_JOBS=2 bench/fuzz.sh    # libFuzzer workers per target (default 1)
#   FUZZ_SANITIZER=address bench/fuzz.sh   # default none: the code is safe
#                                # Rust, and ASan costs ~4x the executions
set -euo pipefail

seconds=${1:-60}
shift || true
jobs=${FUZZ_JOBS:-1}
sanitizer=${FUZZ_SANITIZER:-none}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

python3 - "$root" <<'PY'
"""Seeds fuzz/corpus/<target> from the sample captures and HAR fixtures."""
import hashlib, json, pathlib, re, sys, urllib.parse, zlib

root = pathlib.Path(sys.argv[1])
corpus = root / "fuzz" / "corpus"

def seed(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)

captures = sorted((root / "captures").glob("*.jsonl"))
for capture in captures:
    text = capture.read_text()
    seed("capture_reader", text)
    for token in set(re.findall(r"eyJ[\w-]+\.[\w-]+\.[\w-]*", text)):
        seed("jwt", token)
    for state in set(re.findall(r"_state=([^&\"]+)", text)):
        seed("state", urllib.parse.unquote(state))
    for line in text.splitlines()[1:]:
        try:
            flow = json.loads(line)
        except ValueError:
            continue
        response = flow.get("response") or {}
        for name, value in flow["request"]["headers"] + response.get("headers", []):
            if name.lower() in ("www-authenticate", "authorization") and isinstance(value, str):
                seed("www_authenticate", value)
        body = (response.get("body") or {}).get("inline")
        if isinstance(body, str) and body.lstrip().startswith("{"):
            for selector in (0, 2, 5):
                seed("registry_bodies", bytes([selector]) + body.encode())

fixtures = sorted((root / "crates/regtap-har/tests/fixtures").rglob("*.har"))
for har in fixtures:
    data = har.read_bytes()
    seed("har_import", data)
    seed("har_import", zlib.compress(data))
seed("decoder_flows", b"")
for target in sorted(p.name for p in corpus.iterdir()):
    print(f"corpus {target}: {sum(1 for _ in (corpus / target).iterdir())} files")
PY

failed=0
printf '%-18s %14s %10s %12s  %s\n' target executions seconds "execs/s" result
# Build every target first, so the time limit is spent fuzzing.
cargo +nightly fuzz build --sanitizer "$sanitizer" >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    status=0
    cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        -jobs="$jobs" -workers="$jobs" >"$log" 2>&1 || status=$?
    execs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$log" fuzz-*.log 2>/dev/null |
        awk '{ sum += $2 } END { print sum + 0 }')
    rm -f fuzz-*.log
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $status; see fuzz/artifacts/$target and $log)"
        failed=1
    fi
    printf '%-18s %14s %10s %12s  %s\n' "$target" "$execs" "$seconds" \
        "$((execs / seconds))" "$result"
    [ "$status" -eq 0 ] && rm -f "$log"
done
exit "$failed"
