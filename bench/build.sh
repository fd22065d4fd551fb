#!/usr/bin/env bash
# bench/build.sh: the same multi-platform build and push with archway and with plain
# `docker buildx build --platform a,b --push`, alternating A B A B after a warm-up run of each.
# Prints every pair, the median of the per-pair ratios archway/buildx with their min and max,
# and archway's phase breakdown (the median of each phase over the runs, from its
# `archway::timings` debug lines). Not a test: numbers only.
#
#   bench/build.sh [PAIRS] [SCENARIO]     (default 9 pairs, scenario `qemu`; needs scripts/lab-up)
#
# Scenarios:
#   qemu   a RUN that writes and hashes 8 MiB on the target: natively for linux/amd64, under
#          QEMU for linux/arm64 (both tools build it in one solve)
#   cross  the same work in a `$BUILDPLATFORM` stage every target copies from, built through
#          buildx (`--prefer cross`; the hybrid strategy would otherwise assemble it)
#
# Every run passes a fresh NONCE build arg, so the RUN really executes for both tools; the
# base image layers are cached for both. Both push to a fresh registry of the benchmark's own
# (`bench_registry` in lib.sh), not the lab's, whose state after a day of test runs decides
# the figures otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
pairs=${1:-9}
scenario=${2:-qemu}
platforms=${BENCH_PLATFORMS:-linux/amd64,linux/arm64}
base=$(scripts/lab-env ARCHWAY_LAB_BASE)

cargo build --release --quiet
archway=target/release/archway

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"; stop_bench_registry' EXIT
bench_registry
work='echo "$NONCE" > /nonce && dd if=/dev/urandom of=/blob bs=1M count=8 2>/dev/null && sha256sum /blob > /blob.sum'
case "$scenario" in
qemu)
    extra=()
    cat > "$ctx/Dockerfile" <<DOCKERFILE
ARG BASE=$base
FROM \$BASE
ARG NONCE
# Some real work on the target CPU: checksum a few MiB, as a small compile step would.
RUN ${work} && uname -m > /arch
DOCKERFILE
    ;;
cross)
    extra=(--prefer cross)
    cat > "$ctx/Dockerfile" <<DOCKERFILE
ARG BASE=$base
FROM --platform=\$BUILDPLATFORM \$BASE AS build
ARG NONCE
# The work runs once, on the build platform, for every target.
RUN ${work}
FROM \$BASE
COPY --from=build /blob.sum /blob.sum
DOCKERFILE
    ;;
*)
    echo "unknown scenario \`$scenario\`; expected \`qemu\` or \`cross\`" >&2
    exit 2
    ;;
esac

timings="$ctx/timings"
run_buildx() {
    docker buildx build --platform "$platforms" --progress quiet --build-arg "NONCE=b$1" \
        --output "type=image,name=$registry/bench/buildx:$2,push=true" "$ctx" >/dev/null
}
run_archway() {
    ARCHWAY_LOG=archway::timings=debug "$archway" build "$ctx" --platform "$platforms" "${extra[@]}" \
        --build-arg "NONCE=a$1" -t "$registry/bench/archway:$2" --push 2>"$ctx/stderr" >/dev/null \
        || { cat "$ctx/stderr" >&2; exit 1; }
    # `phase platform secs` from each timing line, colours stripped.
    sed 's/\x1b\[[0-9;]*m//g' "$ctx/stderr" | awk '/archway::timings/ {
        phase = ""; platform = "-"; secs = ""
        for (i = 1; i <= NF; i++) {
            if ($i ~ /^phase=/) { phase = substr($i, 7); gsub(/"/, "", phase) }
            else if ($i ~ /^part=/) { part = substr($i, 6); gsub(/"/, "", part); phase = phase "/" part }
            else if ($i ~ /^platform=/) platform = substr($i, 10)
            else if ($i ~ /^secs=/) secs = substr($i, 6)
        }
        if (phase != "" && secs != "") print phase, platform, secs
    }' >> "$timings"
}

echo "scenario $scenario, platforms $platforms, $pairs pairs after a warm-up of each"
n="$(date +%s%N)"
run_buildx "w$n" warmup
run_archway "w$n" warmup
: > "$timings"

declare -a ratios t_archway t_buildx
for i in $(seq 1 "$pairs"); do
    n="$(date +%s%N)"
    s=$(now); run_buildx "$n" "run$i"; e=$(now)
    b=$(awk "BEGIN {print $e - $s}")
    s=$(now); run_archway "$n" "run$i"; e=$(now)
    a=$(awk "BEGIN {print $e - $s}")
    t_buildx+=("$b"); t_archway+=("$a"); ratios+=("$(awk "BEGIN {print $a / $b}")")
    printf 'pair %2d: buildx %6.3fs  archway %6.3fs  ratio %.3f\n' "$i" "$b" "$a" "${ratios[-1]}"
done

printf 'median buildx   %6.3fs\n' "$(median "${t_buildx[@]}")"
printf 'median archway  %6.3fs\n' "$(median "${t_archway[@]}")"
printf 'archway/buildx: median of paired ratios %.3f (min %.3f, max %.3f)\n' \
    "$(median "${ratios[@]}")" "$(printf '%s\n' "${ratios[@]}" | sort -g | head -1)" \
    "$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1)"
echo "archway phases (median over $pairs runs):"
sort -k1,1 -k2,2 -k3,3g "$timings" | awk '
    function flush() { if (key != "") printf "  %-22s %-28s %6.3fs\n", p, q, (c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2); c = 0 }
    { k = $1 " " $2; if (k != key) { flush(); key = k; p = $1; q = $2 }; v[++c] = $3 }
    END { flush() }'
