#!/usr/bin/env bash
# Runs every check and test of the project, installing what they need first:
# NSD (reference server for the differential tests), Knot and BIND (primaries and secondaries
# in the zone-transfer tests), dig, kdig and nsupdate (real clients), Kea's DHCP-DDNS daemon
# (an UPDATE sender), Unbound and curl (DNS over TLS and HTTPS clients), fstrm_capture,
# BIND's dnstap-read and the dnstap tool (a dnstap receiver and two decoders), and the moto
# Route53 emulator; tests/package.sh and tests/container.sh install lintian, podman and
# debootstrap.
# Usage: tests/run-all.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nsd  >/dev/null || missing+=(nsd)
command -v dig  >/dev/null || missing+=(bind9-dnsutils)
command -v kdig >/dev/null || missing+=(knot-dnsutils)
command -v named-checkzone >/dev/null || missing+=(bind9-utils)
command -v promtool >/dev/null || missing+=(prometheus)
command -v knotd >/dev/null || missing+=(knot)
command -v named >/dev/null || missing+=(bind9)
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v bc >/dev/null || missing+=(bc)
command -v nsupdate >/dev/null || missing+=(bind9-dnsutils)
command -v kea-dhcp-ddns >/dev/null || missing+=(kea-dhcp-ddns-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v unbound >/dev/null || missing+=(unbound)
command -v fstrm_capture >/dev/null || missing+=(fstrm-bin)
command -v dnstap-read >/dev/null || missing+=(bind9-dnsutils)
command -v dnstap >/dev/null || missing+=(golang-github-dnstap-golang-dnstap-cli)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# NSD's and BIND's packages may start a system instance on port 53; the tests use their own on
# loopback ports.

# The Route53 API emulator (moto) for the Route53 tests and the validators for deploy/, in a
# venv outside the repository.
venv="${R53DNS_MOTO_VENV:-$HOME/.cache/r53dns/moto-venv}"
if [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/cfn-lint" ]; then
    echo "installing the moto Route53 emulator and manifest validators into $venv"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'moto==5.2.5' 'flask<4' flask-cors kubernetes-validate pyyaml cfn-lint
fi
export R53DNS_MOTO_VENV="$venv"
# The tests never reach real AWS: they set test credentials and the emulator's address
# themselves; make sure nothing from this shell leaks in.
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export AWS_EC2_METADATA_DISABLED=true
# A DNS over QUIC and over HTTPS client for the encrypted-transport tests (dnspython with
# aioquic, and with httpx2 and h2 for HTTP/2), in the same venv.
if ! "$venv/bin/python" -c 'import dns.quic, aioquic, httpx2, h2' 2>/dev/null; then
    echo "installing dnspython with aioquic, httpx2 and h2 into $venv"
    "$venv/bin/pip" install -q 'dnspython[doh,doq]'
fi

# Each stage's heading carries the time since the start and the free disk space.
start=$SECONDS
stage() { echo "== $1 (at $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s, $(df -h --output=avail . | tail -n 1 | tr -d ' ') free)"; }
stage rustfmt;  cargo fmt --all --check
stage clippy;   cargo clippy --workspace --all-targets --locked -- -D warnings
stage rustdoc;  RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --workspace --locked
stage tests;    cargo test --workspace --locked
# The criterion and timing benchmarks are linked here with the test build's dependencies (clippy
# has checked them); `cargo bench` would build every dependency a second time in release with
# the dev-dependencies' features (tokio's test-util), minutes of CI and gigabytes of disk.
stage "benches build"; cargo test --workspace --benches --no-run --locked
# A few seconds of load against r53dns, NSD and Knot: proves the comparison runs; speed is
# judged from a full run (benches/load/compare.sh), not here.
stage "load smoke"; benches/load/compare.sh --smoke
# The Debian package from the release binary the load smoke built: lintian-clean, installed,
# started as its unit starts it, answering, purged.
stage package; tests/package.sh
# Fifteen seconds of steady load while the snapshot is swapped every second: no query lost,
# no memory growth (the full soak is benches/load/soak.sh without --smoke).
stage "soak smoke"; benches/load/soak.sh --smoke
# The container image, built from a Debian base and run with podman (mostly downloading and
# waiting: it runs beside the fuzz smoke, its output printed when both are done).
container_log=$(mktemp)
tests/container.sh >"$container_log" 2>&1 &
container=$!
# Every fuzz target: the kept crash inputs replayed, then 20 s of fuzzing each (longer runs:
# fuzz/run.sh SECONDS).
stage "fuzz smoke"; fuzz/run.sh 20
stage container
container_status=0
wait "$container" || container_status=$?
cat "$container_log"
rm -f "$container_log"
exit "$container_status"
