#!/usr/bin/env bash
# Load comparison: r53dns (response cache on and off) against NSD and Knot (and two
# do-nothing echo responders: one recvfrom/sendto per packet, and batched) on the same
# zone and query corpus, one at a time on loopback, the server pinned to CPU 0 and the load
# generator to CPU 1. Prints, per server:
#   - UDP q/s with dnsperf (Debian) and with blast (benches/blast, one thread polling eight
#     sockets: it reaches higher rates than dnsperf on this core), lost queries, latency;
#     the blast figure is the median of the rounds (three; ROUNDS=N for more on a noisy
#     machine) taken in turn with the other servers;
#   - UDP p50/p99 latency at a fixed 20 000 q/s (blast, 8 sockets), every server and both
#     echo responders, the median of the rounds and each round's figures: the tail
#     at a moderate load, where batching does not help and waiting for the CPU shows;
#   - TCP q/s (blast, 16 connections, one query in flight each), the median of the rounds
#     (one 20 s figure moved by a quarter between runs of the same binary), and TCP p50/p99
#     latency at a fixed 20 000 q/s (8 connections);
#   - memory (PSS of the server's process tree) after a run of load, and load time (start to
#     first answer);
# then r53dns with --workers 2 on both cores, the ratios r53dns/peer, and DNS over TLS and
# HTTPS against NSD and BIND (encrypted.sh; ENCRYPTED=0 leaves it out). "nocache" is
# r53dns with --response-cache-size 0. Binaries come from $CARGO_TARGET_DIR (or target/).
#
#   benches/load/compare.sh                 # full run: 20 s per measurement
#   benches/load/compare.sh --smoke         # 3 s per measurement (CI)
#   RECORDS=1000000 benches/load/compare.sh # a bigger zone (load time and memory too)
#   ROUNDS=5 benches/load/compare.sh        # five rounds per server instead of three
#
# Needs: nsd, knotd (Debian knot), dnsperf, taskset. It installs nothing; it says what is
# missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/load/lib.sh
duration=20
[ "${1:-}" = "--smoke" ] && duration=3
rounds=${ROUNDS:-3}
records="${RECORDS:-10000}"
missing=()
for t in nsd knotd dnsperf taskset; do command -v "$t" >/dev/null || missing+=("$t"); done
if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (apt-get install nsd knot dnsperf util-linux)" >&2
    exit 2
fi
cargo build --release --locked --bin r53dns >/dev/null
cargo build --release --locked -p r53dns-blast >/dev/null
bin="${CARGO_TARGET_DIR:-target}/release"
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

run_dnsperf() { # prints: qps lost avg-latency-ms
    taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$duration" -c 8 -q 500 2>&1 |
        awk '/Queries lost:/ {lost=$3}
             /Queries per second:/ {qps=$4}
             /Average Latency/ {lat=$4 * 1000}
             END {printf "%.0f %s %.3f\n", qps, lost, lat}'
}

# blast MODE [options]: prints qps lost p50_us p99_us
run_blast() {
    local mode=$1; shift
    taskset -c "${blast_cpus:-1}" "$bin"/blast "$mode" "127.0.0.1:$port" "$work/queries.txt" \
        --duration "$duration" "$@" |
        sed -E 's/.*lost=([0-9]+) qps=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+).*/\2 \1 \3 \4/'
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
    taskset -c "${server_cpus:-0}" "$@" &
    pid=$!
    wait_up
    load_time=$(echo "$(date +%s.%N) - $t0" | bc)
}
start_r53dns() {
    launch "$bin"/r53dns serve --zone "$work/bench.example.zone" --listen "127.0.0.1:$port" \
        --workers "${workers:-1}" --http-listen off --log-level warn "$@"
}
start_nocache() {
    start_r53dns --response-cache-size 0
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
    launch nsd -d -c "$work/nsd/nsd.conf" 2>/dev/null
}
start_knot() {
    write_knot_conf "$work" "$port"
    launch knotd -c "$work/knot/knot.conf"
}

declare -A dq dlost dlat bq blost bp50 tq tp50 tp99 load rss runs truns fixed fp50 fp99
measure() { # server
    read -r dq[$1] dlost[$1] dlat[$1] < <(run_dnsperf)
    read -r _ _ tp50[$1] tp99[$1] < <(run_blast tcp --sockets 8 --rate 20000)
}
# blast TCP for the server running now; keeps every round's q/s.
tcp_round() { # server
    local q
    read -r q _ _ _ < <(run_blast tcp --sockets 16)
    truns[$1]="${truns[$1]:-} $q"
}
# blast UDP for the server running now; keeps every round's q/s, lost and p50.
udp_round() { # server
    local q l p
    read -r q l p _ < <(run_blast udp --sockets 8 --window 16)
    runs[$1]="${runs[$1]:-} $q:$l:$p"
}
# UDP at a fixed 20 000 q/s for the server running now; keeps every round's p50:p99 (us).
fixed_round() { # server
    local p50 p99
    read -r _ _ p50 p99 < <(run_blast udp --sockets 8 --window 64 --rate 20000)
    fixed[$1]="${fixed[$1]:-} $p50:$p99"
}
# The middle line of sorted input (the lower one of an even count).
middle() {
    awk '{r[NR]=$0} END {print r[int((NR+1)/2)]}'
}
# The median of one field (1: p50, 2: p99) over a server's fixed-rate rounds.
fixed_median() { # server field
    tr ' ' '\n' <<<"${fixed[$1]}" | grep . | cut -d: -f"$2" | sort -n | middle
}
# The round with the median q/s.
median_round() { # server
    tr ' ' '\n' <<<"${runs[$1]}" | grep . | sort -t: -k1,1n | middle
}
# The ceiling first: a responder that only echoes, through the same kernel path. A
# throw-away run before it warms the machine up (the first seconds of load on an idle box
# are slower, which would penalise whichever server came first).
taskset -c 0 "$bin"/blast echo "127.0.0.1:$port" &
pid=$!
sleep 0.3
duration=3 run_blast udp --sockets 8 --window 16 >/dev/null
udp_round echo
fixed_round echo
# dnsperf against the per-packet echo too: which generator outruns the ceiling.
read -r dq[echo] dlost[echo] dlat[echo] < <(run_dnsperf)
kill "$pid"; wait "$pid" 2>/dev/null || true
taskset -c 0 "$bin"/blast echo-batch "127.0.0.1:$port" &
pid=$!
sleep 0.3
udp_round echobatch
fixed_round echobatch
read -r dq[echobatch] dlost[echobatch] dlat[echobatch] < <(run_dnsperf)
kill "$pid"; wait "$pid" 2>/dev/null || true
# Rounds, servers in turn: UDP and TCP rates move by several per cent between runs on this
# machine, so each server's figure is the median of the rounds, taken in alternation.
for round in $(seq 1 "$rounds"); do
    for server in r53dns nocache nsd knot; do
        "start_$server"
        if [ "$round" = 1 ]; then
            load[$server]=$load_time
            measure "$server"
        fi
        udp_round "$server"
        fixed_round "$server"
        tcp_round "$server"
        [ "$round" = "$rounds" ] && rss[$server]=$(rss_kb "$pid")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        sleep 0.5
    done
done
for s in echo echobatch r53dns nocache nsd knot; do
    IFS=: read -r bq[$s] blost[$s] bp50[$s] <<<"$(median_round "$s")"
    fp50[$s]=$(fixed_median "$s" 1)
    fp99[$s]=$(fixed_median "$s" 2)
done
for s in r53dns nocache nsd knot; do
    tq[$s]=$(tr ' ' '\n' <<<"${truns[$s]}" | grep . | sort -n | middle)
done
# Two workers, both cores (the load generator shares them: a floor, not the scaling).
server_cpus=0,1 workers=2 start_r53dns
read -r bq[r53dns2] blost[r53dns2] _ _ < <(blast_cpus=0,1 run_blast udp --sockets 8 --window 16)

kill "$pid"; wait "$pid" 2>/dev/null || true

printf '\n%d records, %ss per measurement, server on CPU 0, load generator on CPU 1\n' "$records" "$duration"
printf '%-8s %10s %6s %8s | %10s %6s %7s | %10s %8s %8s | %10s %7s\n' server "dnsperf" lost "avg ms" \
    "blast UDP" lost "p50 us" "TCP q/s" "p50 us" "p99 us" "PSS KiB" "load s"
for s in r53dns nocache nsd knot; do
    printf '%-8s %10s %6s %8s | %10s %6s %7s | %10s %8s %8s | %10s %7.2f\n' "$s" "${dq[$s]}" "${dlost[$s]}" \
        "${dlat[$s]}" "${bq[$s]}" "${blost[$s]}" "${bp50[$s]}" "${tq[$s]}" "${tp50[$s]}" "${tp99[$s]}" "${rss[$s]}" "${load[$s]}"
done
printf '%-8s %10s %6s %8s | %10s %6s %7s |  (UDP echo, one recvfrom/sendto per packet)\n' echo "${dq[echo]}" \
    "${dlost[echo]}" "${dlat[echo]}" "${bq[echo]}" "${blost[echo]}" "${bp50[echo]}"
printf '%-8s %10s %6s %8s | %10s %6s %7s |  (UDP echo, recvmmsg/sendmmsg batches of 32)\n' echobat "${dq[echobatch]}" \
    "${dlost[echobatch]}" "${dlat[echobatch]}" "${bq[echobatch]}" "${blost[echobatch]}" "${bp50[echobatch]}"
printf '\nblast UDP rounds (q/s:lost:p50 us):\n'
for s in r53dns nocache nsd knot; do printf '  %-7s%s\n' "$s" "${runs[$s]}"; done
printf '\nblast TCP rounds (q/s):\n'
for s in r53dns nocache nsd knot; do printf '  %-7s%s\n' "$s" "${truns[$s]}"; done
printf '\nUDP latency at a fixed 20 000 q/s (blast, us): median of the rounds | each round p50:p99\n'
for s in r53dns nocache nsd knot echo echobatch; do
    printf '  %-9s p50 %6s p99 %6s |%s\n' "$s" "${fp50[$s]}" "${fp99[$s]}" "${fixed[$s]}"
done
printf '\nr53dns UDP q/s (blast): 1 worker %s, 2 workers %s (2 workers and the generator share both cores)\n' \
    "${bq[r53dns]}" "${bq[r53dns2]}"
printf '\nratios r53dns/peer (q/s: higher is better; latency, memory, load time: lower is better):\n'
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
for s in nsd knot; do
    printf '  vs %-5s UDP q/s dnsperf %s blast %s | TCP q/s %s, p50 at 20k q/s %s | memory %s | load time %s\n' "$s" \
        "$(ratio "${dq[r53dns]}" "${dq[$s]}")" "$(ratio "${bq[r53dns]}" "${bq[$s]}")" \
        "$(ratio "${tq[r53dns]}" "${tq[$s]}")" "$(ratio "${tp50[r53dns]}" "${tp50[$s]}")" \
        "$(ratio "${rss[r53dns]}" "${rss[$s]}")" "$(ratio "${load[r53dns]}" "${load[$s]}")"
    printf '           UDP at 20k q/s: p50 %s, p99 %s\n' "$(ratio "${fp50[r53dns]}" "${fp50[$s]}")" \
        "$(ratio "${fp99[r53dns]}" "${fp99[$s]}")"
done
printf '  vs echo  UDP q/s blast %s (cache off %s), dnsperf %s | vs batched echo: blast %s, dnsperf %s\n' \
    "$(ratio "${bq[r53dns]}" "${bq[echo]}")" "$(ratio "${bq[nocache]}" "${bq[echo]}")" \
    "$(ratio "${dq[r53dns]}" "${dq[echo]}")" "$(ratio "${bq[r53dns]}" "${bq[echobatch]}")" \
    "$(ratio "${dq[r53dns]}" "${dq[echobatch]}")"
printf '  cache on/off: UDP q/s blast %s, dnsperf %s | TCP q/s %s\n' "$(ratio "${bq[r53dns]}" "${bq[nocache]}")" \
    "$(ratio "${dq[r53dns]}" "${dq[nocache]}")" "$(ratio "${tq[r53dns]}" "${tq[nocache]}")"

# DNS over TLS and over HTTPS at 16 connections against NSD (DoT) and BIND (DoT, DoH), on
# the same corpus (benches/load/encrypted.sh; Knot 3.2 serves neither). ENCRYPTED=0 skips it.
if [ "${ENCRYPTED:-1}" = 1 ]; then
    smoke=()
    [ "$duration" = 3 ] && smoke=(--smoke)
    R53DNS_BIN="$bin/r53dns" RECORDS="$records" benches/load/encrypted.sh "${smoke[@]}"
fi
