#!/usr/bin/env bash
# The container image, end to end: a Debian base made with debootstrap from Debian's archive
# (the same bookworm the default base image is cut from; no registry is needed), the image built
# from deploy/container/Containerfile by deploy/container/build.sh, run with podman with DNS and
# HTTP published on loopback ports, answering dig over UDP and TCP and /readyz, running as the
# unprivileged user, then stopped with SIGTERM (a clean exit after the drain) and removed.
# Usage: tests/container.sh   (as root, or with sudo; after `cargo build --release`, which
# deploy/container/build.sh runs if needed)
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# runc, not crun: crun refuses hosts with cgroups in hybrid (v1 + v2) mode, as CI machines may be.
# The open-file limit is set explicitly: podman's default asks for more than such hosts allow.
podman=($sudo podman --runtime runc)
run_limits=(--ulimit nofile=16384:16384 --ulimit nproc=4096:4096)

work=$(mktemp -d)
base=localhost/r53dns-test-base:bookworm
image=localhost/r53dns-test:ci
name=r53dns-test-$$
cleanup() {
    "${podman[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
    "${podman[@]}" rmi -f "$image" "$base" >/dev/null 2>&1 || true
    $sudo rm -rf "$work"
}
trap cleanup EXIT

$sudo debootstrap --variant=minbase bookworm "$work/root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log"; exit 1; }
$sudo tar -C "$work/root" -c . | "${podman[@]}" import - "$base" >/dev/null 2>"$work/import.log" \
    || { cat "$work/import.log"; exit 1; }
echo "base: $base (debootstrap bookworm minbase)"

deploy/container/build.sh --tag "$image" --base "$base" >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log"; exit 1; }
echo "image: $("${podman[@]}" image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MiB", $1 / 1048576}')"
test "$("${podman[@]}" image inspect --format '{{.Config.User}}' "$image")" = "65532:65532"

port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dns=$(port)
http=$(port)
"${podman[@]}" run -d --name "$name" "${run_limits[@]}" \
    -p "127.0.0.1:$dns:5353/udp" -p "127.0.0.1:$dns:5353/tcp" -p "127.0.0.1:$http:9153/tcp" \
    "$image" >/dev/null

ready=""
for _ in $(seq 100); do
    if curl -fsS "http://127.0.0.1:$http/readyz" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.1
done
[ -n "$ready" ] || { echo "the container never became ready"; "${podman[@]}" logs "$name" | tail -n 20; exit 1; }

expect="ns1.corp.example.com. hostmaster.corp.example.com. 2024060101 7200 1800 1209600 300"
udp=$(dig +short +time=2 +tries=2 @127.0.0.1 -p "$dns" corp.example.com SOA)
tcp=$(dig +tcp +short +time=2 +tries=2 @127.0.0.1 -p "$dns" corp.example.com SOA)
[ "$udp" = "$expect" ] || { echo "UDP answer: '$udp'"; exit 1; }
[ "$tcp" = "$expect" ] || { echo "TCP answer: '$tcp'"; exit 1; }
# A name from the second example zone, through the published port, as a client sees it.
ptr=$(dig +short +time=2 +tries=2 @127.0.0.1 -p "$dns" -x 10.0.0.53)
[ -n "$ptr" ] || { echo "no PTR answer"; exit 1; }
echo "answers over UDP and TCP: $udp / $ptr"

uid=$("${podman[@]}" exec "$name" sh -c 'grep "^Uid:" /proc/1/status' | awk '{print $2}')
[ "$uid" = 65532 ] || { echo "runs as uid $uid"; exit 1; }

"${podman[@]}" stop -t 20 "$name" >/dev/null
code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { echo "exit code $code after SIGTERM"; "${podman[@]}" logs "$name" | tail -n 20; exit 1; }
"${podman[@]}" logs "$name" 2>&1 | grep -q 'drain' || { echo "no drain in the log"; "${podman[@]}" logs "$name" | tail -n 10; exit 1; }
echo "container: built from Debian, answered, ran as 65532, stopped cleanly"
