#!/usr/bin/env bash
# A fleet on loopback: the moto Route53 emulator with RECORDS records in one zone, one syncer
# offering snapshots over HTTP and to S3 (moto's), REPLICAS replicas following it by HTTP and
# one by S3. Reports the resident memory of each, the bytes each replica received, and for
# ROUNDS one-record changes: the time from the change in Route53 to the syncer answering it
# (its sweep, at the Route53 API budget), and from there to every replica answering it.
#
#   benches/fleet/fleet.sh                  # 10 000 records, 3 HTTP replicas, 5 changes
#   RECORDS=50000 ROUNDS=3 benches/fleet/fleet.sh
#
# Needs: dig, the moto venv tests/run-all.sh installs (R53DNS_MOTO_VENV).
set -euo pipefail
cd "$(dirname "$0")/../.."
records="${RECORDS:-10000}"
replicas="${REPLICAS:-3}"
rounds="${ROUNDS:-5}"
venv="${R53DNS_MOTO_VENV:-$HOME/.cache/r53dns/moto-venv}"
[ -x "$venv/bin/moto_server" ] || { echo "moto is not installed in $venv (tests/run-all.sh installs it)" >&2; exit 2; }
cargo build --release --locked --bin r53dns >/dev/null 2>&1
bin=./target/release/r53dns
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port() { echo $((20000 + RANDOM % 20000)); }
moto_port=$(port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 &
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
endpoint="http://127.0.0.1:$moto_port"
for _ in $(seq 1 100); do curl -sf "$endpoint/moto-api/" >/dev/null 2>&1 && break; sleep 0.2; done
cat > "$work/seed.py" <<'PY'
import boto3, sys
ep, n, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r53 = boto3.client("route53", endpoint_url=ep)
if what == "seed":
    boto3.client("s3", endpoint_url=ep).create_bucket(Bucket="snapshots")
    z = r53.create_hosted_zone(Name="fleet.example.", CallerReference="fleet")["HostedZone"]["Id"]
    rr = lambda name, t, v, ttl=300: {"Action": "UPSERT", "ResourceRecordSet": {"Name": name, "Type": t, "TTL": ttl, "ResourceRecords": [{"Value": v}]}}
    changes = [rr("fleet.example.", "SOA", "ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400", 900),
               rr("fleet.example.", "NS", "ns-1.awsdns-01.org.", 172800)]
    changes += [rr(f"h{i}.fleet.example.", "A", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}") for i in range(n - 2)]
    for i in range(0, len(changes), 500):  # moto counts an UPSERT twice against its 1 000
        r53.change_resource_record_sets(HostedZoneId=z, ChangeBatch={"Changes": changes[i:i + 500]})
    print(z.split("/")[-1])
else:
    r53.change_resource_record_sets(HostedZoneId=what, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": "h1.fleet.example.", "Type": "A", "TTL": 300, "ResourceRecords": [{"Value": f"192.0.2.{n}"}]}}]})
PY
zone=$("$venv/bin/python" "$work/seed.py" "$endpoint" "$records" seed)
sync_dns=$(port); sync_http=$(port)
AWS_ENDPOINT_URL="$endpoint" $bin serve --route53 --refresh 1s --listen "127.0.0.1:$sync_dns" \
    --http-listen "127.0.0.1:$sync_http" --replication --replication-allow 127.0.0.0/8 \
    --replication-s3 s3://snapshots/fleet --log-level warn --drain 0s &
pids=("$!")
names=(syncer)
addrs=("$sync_dns")
https=("$sync_http")
for i in $(seq 1 "$replicas"); do
    d=$(port); h=$(port)
    $bin serve --follow "http://127.0.0.1:$sync_http" --listen "127.0.0.1:$d" --http-listen "127.0.0.1:$h" \
        --log-level warn --drain 0s &
    pids+=("$!"); names+=("http-replica-$i"); addrs+=("$d"); https+=("$h")
done
printf '[follow]\nsource = "s3://snapshots/fleet"\npoll-interval = "1s"\n' > "$work/s3.toml"
d=$(port); h=$(port)
AWS_ENDPOINT_URL_S3="$endpoint" $bin serve --config "$work/s3.toml" --listen "127.0.0.1:$d" \
    --http-listen "127.0.0.1:$h" --log-level warn --drain 0s &
pids+=("$!"); names+=("s3-replica"); addrs+=("$d"); https+=("$h")
answer() { dig +time=1 +tries=1 +short -p "$1" @127.0.0.1 h1.fleet.example A 2>/dev/null | head -1; }
start=$(date +%s.%N)
for a in "${addrs[@]}"; do
    for _ in $(seq 1 1200); do [ -n "$(answer "$a")" ] && break; sleep 0.1; done
done
echo "$records records; every server answering after $(echo "$(date +%s.%N) - $start" | bc) s"
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
header="| round | Route53 change → syncer answers (s) |"
for n in "${names[@]:1}"; do header+=" syncer → $n answers (s) |"; done
echo "$header"
echo "|---|---|$(printf -- '---|%.0s' "${names[@]:1}")"
for r in $(seq 1 "$rounds"); do
    want="192.0.2.$((100 + r))"
    t0=$(date +%s.%N)
    "$venv/bin/python" "$work/seed.py" "$endpoint" "$((100 + r))" "$zone"
    until [ "$(answer "$sync_dns")" = "$want" ]; do sleep 0.01; done
    t1=$(date +%s.%N)
    declare -A seen=()
    while [ "${#seen[@]}" -lt $((${#addrs[@]} - 1)) ]; do
        for a in "${addrs[@]:1}"; do
            [ -z "${seen[$a]:-}" ] && [ "$(answer "$a")" = "$want" ] && seen[$a]=$(date +%s.%N)
        done
    done
    row="| $r | $(printf '%.2f' "$(echo "$t1 - $t0" | bc)") |"
    for a in "${addrs[@]:1}"; do row+=" $(printf '%.2f' "$(echo "${seen[$a]} - $t1" | bc)") |"; done
    echo "$row"
    unset seen
done
echo
echo "| server | RSS KiB | peak RSS KiB | snapshot bytes received |"
echo "|---|---|---|---|"
for i in "${!pids[@]}"; do
    got=$(metric "${https[$i]}" r53dns_replication_received_bytes_total)
    printf '| %s | %s | %s | %s |\n' "${names[$i]}" "$(rss "${pids[$i]}")" "$(hwm "${pids[$i]}")" "${got:--}"
done
