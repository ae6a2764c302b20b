#!/usr/bin/env bash
# The Debian package, end to end: built with cargo-deb from the release binary, checked by
# lintian (no error and no warning), installed on this machine with dpkg, started exactly as
# its systemd unit starts it (this machine's init is not systemd; `systemd-analyze verify`
# checks the unit in the integration tests), asked for the localhost zone it ships with and
# through `r53dns ctl`, then purged — and checked to be gone.
# Usage: tests/package.sh   (as root, or with sudo; after `cargo build --release`, which it
# runs if needed)
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
command -v lintian >/dev/null || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian >/dev/null
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.8.0 --quiet

cargo build --release --locked --bin r53dns >/dev/null 2>&1
mkdir -p target/man
target/release/r53dns manual >target/man/r53dns.1
gzip -9nf target/man/r53dns.1
rm -rf target/debian
# Stripped: the release profile keeps line tables for profiling, a package does not need them.
cargo deb --no-build --locked --quiet --strip --output target/debian/
deb=$(ls target/debian/*.deb)
echo "built $deb ($(du -h "$deb" | cut -f1))"

# Policy: anything lintian calls an error or a warning fails.
lintian --fail-on error,warning --suppress-tags-from-file /dev/null "$deb"
echo "lintian: clean"

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    $sudo dpkg --purge r53dns >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

$sudo dpkg -i "$deb" >/dev/null
dpkg -s r53dns | grep -q '^Status: install ok installed'
test -x /usr/bin/r53dns
test -f /usr/share/man/man1/r53dns.1.gz
grep -q '^/etc/r53dns/r53dns.toml$' /var/lib/dpkg/info/r53dns.conffiles
unit=$(dpkg -L r53dns | grep '/systemd/system/r53dns.service$')
/usr/bin/r53dns check --config /etc/r53dns/r53dns.toml >/dev/null

# The unit's own command line, with the directories systemd would give it, on a free port
# (the configuration's port 53 may be taken on a test machine).
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
mkdir -p "$work/state" "$work/run"
cmd=${exec_start//\$\{STATE_DIRECTORY\}/$work/state}
cmd=${cmd//\$\{RUNTIME_DIRECTORY\}/$work/run}
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086 # the unit's words, split as systemd splits them
$cmd --listen "127.0.0.1:$port" --http-listen 127.0.0.1:0 2>"$work/log" &
server=$!
for _ in $(seq 50); do
    [ -S "$work/run/control.sock" ] && break
    sleep 0.1
done
soa=$(dig @127.0.0.1 -p "$port" localhost SOA +short +tries=1 +time=2)
[ "$soa" = "localhost. root.localhost. 1 604800 86400 2419200 604800" ] || {
    echo "unexpected SOA: '$soa'"
    cat "$work/log"
    exit 1
}
/usr/bin/r53dns ctl --socket "$work/run/control.sock" status | grep -q '"ready": true'
kill -TERM "$server"
wait "$server"
server=""
[ ! -e "$work/run/control.sock" ]

$sudo dpkg --purge r53dns >/dev/null
[ ! -e /usr/bin/r53dns ] && [ ! -e /etc/r53dns/r53dns.toml ] && ! dpkg -s r53dns >/dev/null 2>&1
echo "installed, answered, purged"
