#!/usr/bin/env bash
# Memory of loading and reloading one big zone file: r53dns against Knot on the same file,
# one after the other, in the same run. Prints, per server:
#   - load time (start to first answer) and the peak resident memory of the load (VmHWM
#     at the first answer);
#   - steady resident memory (VmRSS) 15 s after the first answer (r53dns's allocator gives
#     the garbage of a build back after about ten seconds);
#   - a reload of the unchanged file (r53dns: SIGHUP; Knot: `knotc zone-reload`, which
#     reads the file whatever its time stamp): its peak (VmHWM, reset with `clear_refs`
#     just before, so it is the reload's own) and that peak over the resident memory just
#     before it (what building a new snapshot beside the live one costs), and its time;
# then the ratios r53dns/Knot.
#
#   benches/load/memory.sh                   # 1 000 000 host records (1.25 M records)
#   RECORDS=100000 benches/load/memory.sh    # a smaller zone
#   STEADY=30 benches/load/memory.sh         # wait 30 s for the steady figure
#
#   R53DNS=/tmp/r53dns-old benches/load/memory.sh   # another build of r53dns (not rebuilt)
#
# Needs: knotd and knotc (Debian knot), dig, and write access to /proc/PID/clear_refs (the
# processes it starts are its own). r53dns is built into $CARGO_TARGET_DIR (or target/).
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/load/lib.sh
records="${RECORDS:-1000000}"
steady="${STEADY:-15}"
missing=()
for t in knotd knotc dig; do command -v "$t" >/dev/null || missing+=("$t"); done
if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (apt-get install knot bind9-dnsutils)" >&2
    exit 2
fi
if [ -z "${R53DNS:-}" ]; then
    cargo build --release --locked --bin r53dns >/dev/null
    R53DNS="${CARGO_TARGET_DIR:-target}/release/r53dns"
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 benches/load/gen.py "$work" "$records"
port=$((20000 + RANDOM % 20000))

answers() { # an A record, not an error message
    dig +time=1 +tries=1 +short -p "$port" @127.0.0.1 ns1.bench.example A 2>/dev/null | grep -q '^192\.0\.2\.1$'
}
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# run NAME RELOAD-COMMAND START-COMMAND...: starts the server, measures, reloads, stops it.
declare -A load_s load_peak steady_rss reload_s reload_peak reload_over
run() {
    local name=$1 reload=$2 t0 before
    shift 2
    t0=$(now)
    "$@" &
    pid=$!
    for _ in $(seq 1 600); do answers && break; sleep 0.05; done
    answers || { echo "$name did not come up" >&2; exit 1; }
    load_s[$name]=$(since "$t0")
    load_peak[$name]=$(kib "$pid" VmHWM)
    sleep "$steady"
    steady_rss[$name]=$(kib "$pid" VmRSS)
    before=${steady_rss[$name]}
    echo 5 > "/proc/$pid/clear_refs"
    t0=$(now)
    $reload
    reload_s[$name]=$(since "$t0")
    reload_peak[$name]=$(kib "$pid" VmHWM)
    reload_over[$name]=$((reload_peak[$name] - before))
    answers || { echo "$name stopped answering after the reload" >&2; exit 1; }
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    sleep 0.5
}

# r53dns logs "zone files reloaded" when the new snapshot is published.
reload_r53dns() {
    local seen; seen=$(grep -c "zone files reloaded" "$work/r53dns.log" || true)
    kill -HUP "$pid"
    for _ in $(seq 1 1200); do
        [ "$(grep -c "zone files reloaded" "$work/r53dns.log" || true)" -gt "$seen" ] && return 0
        sleep 0.05
    done
    echo "r53dns: reload did not finish" >&2
    exit 1
}
start_r53dns() {
    exec "$R53DNS" serve --zone "$work/bench.example.zone" --listen "127.0.0.1:$port" --workers 1 \
        --http-listen off --log-level info 2>"$work/r53dns.log"
}

write_knot_conf "$work" "$port"
reload_knot() { knotc -c "$work/knot/knot.conf" -b -t 600 zone-reload bench.example >/dev/null; }

run r53dns reload_r53dns start_r53dns
run knot reload_knot knotd -c "$work/knot/knot.conf"

mib() { echo "$1 / 1024" | bc -l | xargs printf '%.0f'; }
printf '\n%d records (%s), memory in MiB\n' "$(grep -cv '^\$' "$work/bench.example.zone")" \
    "$(du -h "$work/bench.example.zone" | cut -f1)"
printf '%-7s %7s %10s %11s | %9s %12s %14s\n' server "load s" "load peak" "steady RSS" "reload s" \
    "reload peak" "peak over RSS"
for s in r53dns knot; do
    printf '%-7s %7.2f %10s %11s | %9.2f %12s %14s\n' "$s" "${load_s[$s]}" "$(mib "${load_peak[$s]}")" \
        "$(mib "${steady_rss[$s]}")" "${reload_s[$s]}" "$(mib "${reload_peak[$s]}")" "$(mib "${reload_over[$s]}")"
done
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
printf '\nr53dns/knot: load peak %s, steady %s, reload peak %s, reload over steady %s, load time %s\n' \
    "$(ratio "${load_peak[r53dns]}" "${load_peak[knot]}")" "$(ratio "${steady_rss[r53dns]}" "${steady_rss[knot]}")" \
    "$(ratio "${reload_peak[r53dns]}" "${reload_peak[knot]}")" \
    "$(ratio "${reload_over[r53dns]}" "${reload_over[knot]}")" "$(ratio "${load_s[r53dns]}" "${load_s[knot]}")"
