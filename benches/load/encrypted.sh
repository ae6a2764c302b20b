#!/usr/bin/env bash
# DNS over TLS and over HTTPS under load: r53dns against NSD (DoT) and BIND (DoT, DoH) on the
# zone and query corpus of compare.sh, one server at a time on loopback, the server pinned to
# CPU 0 and dnsperf to CPU 1. dnsperf keeps 16 connections (-c 16) with up to 64 queries in
# flight; printed per server and transport: q/s, lost queries, and p50/p99 latency from
# dnsperf's per-query report. DoH is asked with GET (dnsperf's default) only: dnsperf 2.10's
# DoH client appends the DATA of every stream to one buffer per connection, so it can take
# only one response per TLS read (it counts the others lost), and its POST manages a few
# dozen queries a second on one connection against BIND as against r53dns; its POST figures
# measure the client, not the server.
# Knot 3.2 (Debian 12) serves neither DoT nor DoH, so it has no row.
#
#   benches/load/encrypted.sh           # 20 s per measurement
#   benches/load/encrypted.sh --smoke   # 3 s per measurement
#
# Needs: nsd, named (bind9), dnsperf, openssl, taskset. It installs nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=20
[ "${1:-}" = "--smoke" ] && duration=3
records="${RECORDS:-10000}"
missing=()
for t in nsd named dnsperf openssl taskset; do command -v "$t" >/dev/null || missing+=("$t"); done
if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (apt-get install nsd bind9 dnsperf openssl util-linux)" >&2
    exit 2
fi
bin="${R53DNS_BIN:-./target/release/r53dns}"
[ -n "${R53DNS_BIN:-}" ] || cargo build --release --locked --bin r53dns >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 benches/load/gen.py "$work" "$records"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=dns.test \
    -addext "subjectAltName=DNS:dns.test,IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port=$((20000 + RANDOM % 20000))
dot=$((port + 1))
doh=$((port + 2))

wait_up() {
    for _ in $(seq 1 200); do
        [ -n "$(dig +time=1 +tries=1 +short -p "$port" @127.0.0.1 ns1.bench.example A 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    echo "server did not come up" >&2
    return 1
}

# run MODE PORT [dnsperf options]: prints "qps lost p50_ms p99_ms"
run() {
    local mode=$1 p=$2; shift 2
    taskset -c 1 dnsperf -m "$mode" -s 127.0.0.1 -p "$p" -d "$work/queries.txt" -l "$duration" -c 16 -q 64 -v "$@" \
        >"$work/out.txt" 2>&1 || true
    # Per-query lines: "> NOERROR name type 0.000123" (seconds); timeouts have no time.
    awk '/^> / && $NF ~ /^[0-9.]+$/ {print $NF * 1000}' "$work/out.txt" | sort -g >"$work/lat.txt"
    local n p50 p99 qps lost
    n=$(wc -l <"$work/lat.txt")
    p50=$(sed -n "$((n / 2 + 1))p" "$work/lat.txt")
    p99=$(sed -n "$((n * 99 / 100 + 1))p" "$work/lat.txt")
    qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$work/out.txt")
    lost=$(awk '/Queries lost:/ {print $3}' "$work/out.txt")
    printf '%s %s %.3f %.3f\n' "${qps:-0}" "${lost:-?}" "${p50:-0}" "${p99:-0}"
}

start_r53dns() {
    taskset -c 0 "$bin" serve --zone "$work/bench.example.zone" --listen "127.0.0.1:$port" --workers 1 \
        --tls-listen "127.0.0.1:$dot" --https-listen "127.0.0.1:$doh" --tls-cert "$work/cert.pem" \
        --tls-key "$work/key.pem" --http-listen off --log-level warn --drain 0s &
    pid=$!
    wait_up
}
start_nsd() {
    mkdir -p "$work/nsd"
    cat > "$work/nsd/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$port
  ip-address: 127.0.0.1@$dot
  port: $port
  tls-port: $dot
  tls-service-key: "$work/key.pem"
  tls-service-pem: "$work/cert.pem"
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
    taskset -c 0 nsd -d -c "$work/nsd/nsd.conf" 2>/dev/null &
    pid=$!
    wait_up
}
start_bind() {
    mkdir -p "$work/bind"
    cat > "$work/bind/named.conf" <<CONF
options {
    directory "$work/bind";
    pid-file "$work/bind/named.pid";
    listen-on port $port { 127.0.0.1; };
    listen-on port $dot tls local { 127.0.0.1; };
    listen-on port $doh tls local http default { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    rate-limit { responses-per-second 0; };
};
tls local { cert-file "$work/cert.pem"; key-file "$work/key.pem"; };
zone "bench.example" { type primary; file "$work/bench.example.zone"; };
CONF
    taskset -c 0 named -g -n 1 -c "$work/bind/named.conf" >/dev/null 2>&1 &
    pid=$!
    wait_up
}
stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sleep 0.5
}

declare -A res
for server in r53dns nsd bind; do
    "start_$server"
    res[$server-dot]=$(run dot "$dot")
    if [ "$server" != nsd ]; then
        res[$server-doh]=$(run doh "$doh" -O "doh-uri=https://127.0.0.1:$doh/dns-query" -O doh-method=GET)
    fi
    stop
done

printf '\n%d records, %ss per measurement, 16 connections, 64 queries in flight; server on CPU 0, dnsperf on CPU 1\n' \
    "$records" "$duration"
printf '%-8s %-9s %10s %8s %8s %8s\n' server transport "q/s" lost "p50 ms" "p99 ms"
for key in r53dns-dot nsd-dot bind-dot r53dns-doh bind-doh; do
    read -r q l p50 p99 <<<"${res[$key]}"
    printf '%-8s %-9s %10s %8s %8s %8s\n' "${key%%-*}" "${key#*-}" "$q" "$l" "$p50" "$p99"
done
printf '(Knot 3.2 serves neither DNS over TLS nor over HTTPS.)\n'
