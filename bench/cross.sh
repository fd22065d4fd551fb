#!/usr/bin/env bash
# bench/cross.sh: a cross-compiling Dockerfile — a `FROM --platform=$BUILDPLATFORM` stage that
# does real work for each `TARGETARCH` (hashes 64 MiB, then writes a 20 MB "binary", half
# random and half text like a real one, that differs per platform and per run), a final stage
# that copies the result onto the lab base —
# for linux/amd64 and linux/arm64, pushed to a fresh registry of its own: archway (the hybrid
# `assembled` strategy: the engine builds the build stage natively, archway assembles the
# rest) against plain `docker buildx build --platform linux/amd64,linux/arm64 --push`.
#
#   bench/cross.sh [PAIRS]     (default 7; needs scripts/lab-up)
#
# Alternates A B after one warm-up pair and prints each pair, both medians and the median of
# the paired ratios archway/buildx (target <= 0.70). Not a test: numbers only.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
pairs=${1:-7}
base=$(scripts/lab-env ARCHWAY_LAB_BASE)

cargo build --release --quiet
archway=$PWD/target/release/archway

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"; stop_bench_registry' EXIT
bench_registry
write_dockerfile() { # NONCE: a new value makes every RUN really execute
    cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM --platform=\$BUILDPLATFORM $base AS build
ARG TARGETARCH
RUN mkdir /out && head -c 67108864 /dev/zero | sha256sum > /out/work && \\
    { head -c 10485760 /dev/urandom; yes "\$TARGETARCH $1" | head -c 10485760; } > /out/app
FROM $base
COPY --from=build /out/app /usr/local/bin/app
CMD ["ls", "-l", "/usr/local/bin/app"]
DOCKERFILE
}


write_dockerfile plan
"$archway" plan "$ctx" --platform linux/amd64,linux/arm64 2>&1 | sed -n '1,3p' || true
declare -a ta tb ratios
echo "$pairs pairs after a warm-up pair, 2 platforms, pushed to $registry"
for i in $(seq 0 "$pairs"); do
    write_dockerfile "a$i-$(date +%s%N)"
    s=$(now); run_archway_push "$registry/bench/cross-archway:run$i"; e=$(now); a=$(elapsed "$s" "$e")
    write_dockerfile "b$i-$(date +%s%N)"
    s=$(now); run_buildx_push "$registry/bench/cross-buildx:run$i"; e=$(now); b=$(elapsed "$s" "$e")
    if [[ $i -eq 0 ]]; then
        printf 'warm-up: archway %6.2fs  buildx %6.2fs\n' "$a" "$b"
        continue
    fi
    ta+=("$a"); tb+=("$b"); ratios+=("$(awk "BEGIN {print $a / $b}")")
    printf 'pair %d: archway %6.2fs  buildx %6.2fs  ratio %.3f\n' "$i" "$a" "$b" "${ratios[-1]}"
done
sorted=$(printf '%s\n' "${ratios[@]}" | sort -g)
printf 'median archway %6.3fs, buildx %6.3fs; median paired ratio archway/buildx %.3f (min %.3f, max %.3f; target <= 0.70)\n' \
    "$(median "${ta[@]}")" "$(median "${tb[@]}")" "$(median "${ratios[@]}")" "$(head -1 <<<"$sorted")" "$(tail -1 <<<"$sorted")"
