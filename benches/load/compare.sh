#!/usr/bin/env bash
# Load comparison: r53dns against NSD and Knot on the same zone and query corpus, one at a
# time on loopback, the server pinned to CPU 0 and dnsperf to CPU 1. Prints qps, lost
# queries, latency and the ratio r53dns/peer.
#
#   benches/load/compare.sh                 # full run: 20 s per server
#   benches/load/compare.sh --smoke         # 3 s per server (CI)
#   RECORDS=1000000 benches/load/compare.sh # a bigger zone (load time and memory too)
#
# Needs: nsd, knotd (Debian knot), dnsperf, taskset. It installs nothing; it says what is
# missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=20
[ "${1:-}" = "--smoke" ] && duration=3
records="${RECORDS:-10000}"
missing=()
for t in nsd knotd dnsperf taskset; do command -v "$t" >/dev/null || missing+=("$t"); done
if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (apt-get install nsd knot dnsperf util-linux)" >&2
    exit 2
fi
cargo build --release --locked --bin r53dns >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 benches/load/gen.py "$work" "$records"
port=$((20000 + RANDOM % 20000))

wait_up() {
    for _ in $(seq 1 200); do
        dig +time=1 +tries=1 +short -p "$port" @127.0.0.1 ns1.bench.example A >/dev/null 2>&1 && \
            [ -n "$(dig +time=1 +tries=1 +short -p "$port" @127.0.0.1 ns1.bench.example A)" ] && return 0
        sleep 0.1
    done
    echo "server did not come up" >&2
    return 1
}

run_load() { # name, transport flag ("" or "-m tcp")
    taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$duration" -c 8 -q 500 $2 2>&1 |
        awk -v name="$1" '
            /Queries sent:/ {sent=$3}
            /Queries lost:/ {lost=$3}
            /Queries per second:/ {qps=$4}
            /Average Latency/ {lat=$4}
            END {printf "%s %s %s %s\n", name, qps, lost, lat}'
}

# Memory of a server's whole process tree (NSD keeps its zone in forked children) as PSS,
# so pages the processes share are counted once.
rss_kb() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1"); do
        total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# Starts a server on CPU 0 and measures the time until it answers (the zone's load time).
launch() {
    local t0; t0=$(date +%s.%N)
    taskset -c 0 "$@" &
    pid=$!
    wait_up
    load_time=$(echo "$(date +%s.%N) - $t0" | bc)
}
start_r53dns() {
    launch ./target/release/r53dns serve --zone "$work/bench.example.zone" --listen "127.0.0.1:$port" \
        --workers 1 --http-listen off --log-level warn
}
start_nsd() {
    mkdir -p "$work/nsd"
    cat > "$work/nsd/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$port
  port: $port
  username: ""
  chroot: ""
  zonesdir: "$work"
  pidfile: "$work/nsd/nsd.pid"
  database: ""
  xfrdfile: "$work/nsd/xfrd.state"
  zonelistfile: "$work/nsd/zone.list"
  server-count: 1
  hide-version: yes
  rrl-ratelimit: 0
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: bench.example
  zonefile: bench.example.zone
CONF
    launch nsd -d -c "$work/nsd/nsd.conf"
}
start_knot() {
    mkdir -p "$work/knot"
    cat > "$work/knot/knot.conf" <<CONF
server:
    listen: 127.0.0.1@$port
    rundir: "$work/knot"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$work/knot"
log:
  - target: stderr
    any: error
zone:
  - domain: bench.example
    file: "$work/bench.example.zone"
    journal-content: none
    zonefile-load: whole
CONF
    launch knotd -c "$work/knot/knot.conf"
}

declare -A qps lost lat tqps load rss
for server in r53dns nsd knot; do
    "start_$server"
    sleep 0.5
    rss[$server]=$(rss_kb "$pid")
    load[$server]=$load_time
    read -r _ qps[$server] lost[$server] lat[$server] < <(run_load "$server" "")
    read -r _ tqps[$server] _ _ < <(run_load "$server" "-m tcp")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    sleep 0.5
done

printf '\n%d records, %ss per run, server on CPU 0, dnsperf on CPU 1\n' "$records" "$duration"
printf '%-8s %12s %8s %12s %12s %10s %10s\n' server "UDP qps" lost "avg lat s" "TCP qps" "PSS KiB" "load s"
for s in r53dns nsd knot; do
    printf '%-8s %12s %8s %12s %12s %10s %10.2f\n' "$s" "${qps[$s]}" "${lost[$s]}" "${lat[$s]}" "${tqps[$s]}" "${rss[$s]}" "${load[$s]}"
done
printf '\nratios r53dns/peer:\n'
for s in nsd knot; do
    printf '  vs %-5s UDP qps %.2f  TCP qps %.2f  memory %.2f  load time %.2f\n' "$s" \
        "$(echo "${qps[r53dns]} / ${qps[$s]}" | bc -l)" "$(echo "${tqps[r53dns]} / ${tqps[$s]}" | bc -l)" \
        "$(echo "${rss[r53dns]} / ${rss[$s]}" | bc -l)" "$(echo "${load[r53dns]} / ${load[$s]}" | bc -l)"
done
