#!/usr/bin/env bash
# bench/build.sh: the same two-platform build and push with archway and with plain
# `docker buildx build --platform a,b --push`, alternating, several runs; prints each run,
# the medians and the ratio archway/buildx. Not a test: numbers only.
#
#   bench/build.sh [RUNS]        (default 5; needs scripts/lab-up)
#
# Every run passes a fresh NONCE build arg, so the RUN step really executes (under QEMU for
# arm64) for both tools; the base image layers are cached for both.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
platforms=${BENCH_PLATFORMS:-linux/amd64,linux/arm64}
registry=$(scripts/lab-env ARCHWAY_LAB_REGISTRY)
base=$(scripts/lab-env ARCHWAY_LAB_BASE)

cargo build --release --quiet
archway=target/release/archway

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cat > "$ctx/Dockerfile" <<DOCKERFILE
ARG BASE=$base
FROM \$BASE
ARG NONCE
# Some real work on the target CPU: checksum a few MiB, as a small compile step would.
RUN echo "\$NONCE" > /nonce && dd if=/dev/urandom of=/blob bs=1M count=8 2>/dev/null && sha256sum /blob > /blob.sum && uname -m > /arch
DOCKERFILE

now() { date +%s.%N; }
declare -a t_archway t_buildx
for i in $(seq 1 "$runs"); do
    n="$(date +%s%N)"
    s=$(now)
    docker buildx build --platform "$platforms" --progress quiet --build-arg "NONCE=b$n" \
        --output "type=image,name=$registry/bench/buildx:run$i,push=true" "$ctx" >/dev/null
    e=$(now); t_buildx+=("$(awk "BEGIN {print $e - $s}")")
    s=$(now)
    "$archway" build "$ctx" --platform "$platforms" --build-arg "NONCE=a$n" -t "$registry/bench/archway:run$i" --push >/dev/null 2>&1
    e=$(now); t_archway+=("$(awk "BEGIN {print $e - $s}")")
    printf 'run %d: buildx %6.2fs  archway %6.2fs\n' "$i" "${t_buildx[-1]}" "${t_archway[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(median "${t_buildx[@]}")
ma=$(median "${t_archway[@]}")
printf 'platforms %s, %d runs\n' "$platforms" "$runs"
printf 'median buildx   %6.2fs\n' "$mb"
printf 'median archway  %6.2fs\n' "$ma"
printf 'ratio archway/buildx %.3f (target <= 1.10)\n' "$(awk "BEGIN {print $ma / $mb}")"
