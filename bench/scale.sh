#!/usr/bin/env bash
# Analysis at scale: grows a real capture to N flows (bench/grow-capture.py),
# then times `cat`, `regtap inspect` (text and --json) and `regtap har` on it, with
# their peak RSS, and prints each as a ratio to `cat` reading the same file
# in the same run.
#
#     bench/scale.sh [SIZES...]          # default: 10000 100000
#     SCALE_SOURCE=captures/crane.jsonl SCALE_DIR=/var/tmp bench/scale.sh 1000000
#
# REGTAP (default target/release/regtap, built if missing) is the binary
# measured. Generated captures are kept in SCALE_DIR (default /tmp) as
# scale-<source>-<N>.jsonl and reused; a 1M-flow capture of the default
# source takes about 4.1 GB.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source_capture=${SCALE_SOURCE:-$root/captures/parallel-clients.jsonl}
dir=${SCALE_DIR:-/tmp}
regtap=${REGTAP:-$root/target/release/regtap}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)

if [ ! -x "$regtap" ]; then
    (cd "$root" && cargo build --release -p regtap)
fi
[ -x /usr/bin/time ] || { echo "bench/scale.sh needs GNU time (/usr/bin/time)" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Runs "$@" with stdout to /dev/null; prints "<wall s> <CPU s> <peak RSS KiB>".
# CPU time (user + system) is the steadier figure on a shared machine.
measure() {
    /usr/bin/time -f '%e %U %S %M' -o "$out/time" "$@" >/dev/null 2>"$out/stderr" || {
        echo "failed: $*" >&2
        cat "$out/stderr" >&2
        exit 1
    }
    awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$out/time"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b; else print "-" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# Times are wall / CPU seconds; ×cat divides each by cat's.
printf '%-8s %8s %11s | %13s %8s %11s | %13s %8s %11s | %13s %8s %11s\n' \
    flows "file MiB" "cat s" "inspect s" "RSS MiB" "×cat" "--json s" "RSS MiB" "×cat" \
    "har s" "RSS MiB" "×cat"
for n in "${sizes[@]}"; do
    capture="$dir/scale-$(basename "$source_capture" .jsonl)-$n.jsonl"
    if [ ! -s "$capture" ]; then
        python3 "$root/bench/grow-capture.py" "$source_capture" "$n" >"$capture.part"
        mv "$capture.part" "$capture"
    fi
    size=$(stat -L -c %s "$capture")
    # The file from the page cache, as the runs below read it.
    cat "$capture" >/dev/null
    read -r cat_s cat_cpu _ < <(measure cat "$capture")
    read -r text_s text_cpu text_kib < <(measure "$regtap" inspect --color never "$capture")
    read -r inspect_s inspect_cpu inspect_kib < <(measure "$regtap" inspect --json "$capture")
    read -r har_s har_cpu har_kib < <(measure "$regtap" har "$capture" -o "$out/out.har")
    rm -f "$out/out.har"
    printf '%-8s %8s %11s | %13s %8s %11s | %13s %8s %11s | %13s %8s %11s\n' \
        "$n" "$(mib $((size / 1024)))" "$cat_s/$cat_cpu" \
        "$text_s/$text_cpu" "$(mib "$text_kib")" \
        "$(ratio "$text_s" "$cat_s")/$(ratio "$text_cpu" "$cat_cpu")" \
        "$inspect_s/$inspect_cpu" "$(mib "$inspect_kib")" \
        "$(ratio "$inspect_s" "$cat_s")/$(ratio "$inspect_cpu" "$cat_cpu")" \
        "$har_s/$har_cpu" "$(mib "$har_kib")" \
        "$(ratio "$har_s" "$cat_s")/$(ratio "$har_cpu" "$cat_cpu")"
done
