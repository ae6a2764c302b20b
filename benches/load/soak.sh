#!/usr/bin/env bash
# Soak: r53dns under steady dnsperf load while its zone changes and a new snapshot is
# swapped in every second (zone file rewritten with a new serial, SIGHUP). Reports queries
# sent and lost, latency, how many swaps happened, and resident memory at start, end and
# peak. Fails (exit 1) on any lost query or when memory at the end exceeds the peak of the
# first third of the run (the working set once reloads happen: a reload holds the old and
# the new zone at once) by more than 4 MiB + 20%.
#
#   benches/load/soak.sh             # 180 s at 20k queries/s
#   benches/load/soak.sh --smoke     # 15 s (CI)
#   DURATION=600 QPS=50000 benches/load/soak.sh
#
# Needs: dnsperf, taskset, dig (it installs nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${DURATION:-180}"
[ "${1:-}" = "--smoke" ] && duration=15
qps="${QPS:-20000}"
records="${RECORDS:-10000}"
for t in dnsperf taskset dig; do
    command -v "$t" >/dev/null || { echo "missing: $t (apt-get install dnsperf util-linux bind9-dnsutils)" >&2; exit 2; }
done
cargo build --release --locked --bin r53dns >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 benches/load/gen.py "$work" "$records"
zone="$work/bench.example.zone"
port=$((20000 + RANDOM % 20000))
taskset -c 0 ./target/release/r53dns serve --zone "$zone" --listen "127.0.0.1:$port" --workers 1 \
    --http-listen off --log-level warn &
pid=$!
for _ in $(seq 1 100); do
    [ -n "$(dig +time=1 +tries=1 +short -p "$port" @127.0.0.1 ns1.bench.example A 2>/dev/null)" ] && break
    sleep 0.1
done
rss() { ps -o rss= -p "$pid" | tr -d ' '; }
rss_start=$(rss)
rss_peak=$rss_start
# Swapper: a new serial (and one changed record) every second.
(
    serial=$(awk '/SOA/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) {print $i; exit}}' "$zone")
    n=0
    while sleep 1; do
        n=$((n + 1))
        next=$((serial + n))
        sed -i "0,/ $((next - 1)) / s// $next /" "$zone"
        echo "soak$n 60 IN A 192.0.2.$((n % 250 + 1))" >> "$zone"
        kill -HUP "$pid"
        echo "$n" > "$work/swaps"
    done
) &
swapper=$!
(
    while sleep 1; do
        r=$(rss); [ -n "$r" ] || exit 0
        echo "$r" >> "$work/rss"
        [ "$r" -gt "$(cat "$work/peak" 2>/dev/null || echo 0)" ] && echo "$r" > "$work/peak"
    done
) &
taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$duration" -Q "$qps" -c 8 -q 1000 \
    > "$work/dnsperf.txt" 2>&1
kill "$swapper" 2>/dev/null || true
serial_now=$(dig +short -p "$port" @127.0.0.1 bench.example SOA | awk '{print $3}')
rss_end=$(rss)
rss_peak=$(cat "$work/peak" 2>/dev/null || echo "$rss_end")
kill "$pid"; wait "$pid" 2>/dev/null || true
sent=$(awk '/Queries sent:/ {print $3}' "$work/dnsperf.txt")
lost=$(awk '/Queries lost:/ {print $3}' "$work/dnsperf.txt")
lat=$(awk '/Average Latency/ {print $4, $6, $8}' "$work/dnsperf.txt")
got_qps=$(awk '/Queries per second:/ {print $4}' "$work/dnsperf.txt")
swaps=$(cat "$work/swaps" 2>/dev/null || echo 0)
printf 'soak: %ss at %s q/s target, %s records, a snapshot swap every second\n' "$duration" "$qps" "$records"
printf '  queries sent %s, lost %s, achieved %s q/s\n' "$sent" "$lost" "$got_qps"
printf '  latency avg/min/max (s): %s\n' "$lat"
printf '  swaps %s (serial now %s)\n' "$swaps" "$serial_now"
printf '  RSS KiB: start %s, end %s, peak %s\n' "$rss_start" "$rss_end" "$rss_peak"
printf '  RSS KiB every 10 s: %s\n' "$(awk 'NR % 10 == 1' "$work/rss" | tr '\n' ' ')"
status=0
[ "${lost:-1}" = "0" ] || { echo "FAIL: queries lost" >&2; status=1; }
[ "$swaps" -ge $((duration / 2)) ] || { echo "FAIL: too few swaps" >&2; status=1; }
warm=$(head -n $((duration / 3 > 1 ? duration / 3 : 1)) "$work/rss" | sort -n | tail -n 1)
bound=$((warm + warm / 5 + 4096))
printf '  RSS KiB after warm-up %s, allowed at the end %s\n' "$warm" "$bound"
[ "$rss_end" -le "$bound" ] || { echo "FAIL: RSS grew beyond $bound KiB" >&2; status=1; }
exit $status
