#!/usr/bin/env bash
# Runs every check and test of the project, installing what they need first:
# NSD (reference server for the differential tests), dig and kdig (real clients).
# Usage: tests/run-all.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nsd  >/dev/null || missing+=(nsd)
command -v dig  >/dev/null || missing+=(bind9-dnsutils)
command -v kdig >/dev/null || missing+=(knot-dnsutils)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# NSD's package may start a system instance on port 53; the tests use their own on loopback.

echo "== rustfmt";  cargo fmt --all --check
echo "== clippy";   cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== rustdoc";  RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --workspace --locked
echo "== benches build"; cargo bench --workspace --no-run --locked
echo "== tests";    cargo test --workspace --locked
