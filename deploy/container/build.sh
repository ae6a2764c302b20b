#!/usr/bin/env bash
# Builds the r53dns container image from this tree: the release binary (compiled here if it is
# missing or out of date), stripped, with the example zones and the image's configuration, in a
# build context of its own.
# Usage: deploy/container/build.sh [--tag NAME:TAG] [--base IMAGE] [--engine podman|buildah|docker]
#   --tag     the image name (default r53dns:VERSION, VERSION from Cargo.toml)
#   --base    the Debian image to build on (default docker.io/library/debian:bookworm-slim)
#   --engine  the tool that builds it (default podman)
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
tag="r53dns:$version"
base=docker.io/library/debian:bookworm-slim
engine=podman
while (($#)); do
    case "$1" in
        --tag) tag=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --engine) engine=$2; shift 2 ;;
        *) echo "usage: $0 [--tag NAME:TAG] [--base IMAGE] [--engine podman|buildah|docker]" >&2; exit 2 ;;
    esac
done

cargo build --release --locked --bin r53dns
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# The release profile keeps line tables for profiling; an image does not need them.
strip -o "$context/r53dns" target/release/r53dns
cp -r examples/zones "$context/zones"
cp deploy/container/r53dns.toml "$context/r53dns.toml"
case "$engine" in
    buildah) buildah bud --build-arg "BASE=$base" -f deploy/container/Containerfile -t "$tag" "$context" ;;
    *) "$engine" build --build-arg "BASE=$base" -f deploy/container/Containerfile -t "$tag" "$context" ;;
esac
echo "built $tag on $base"
