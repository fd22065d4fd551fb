#!/usr/bin/env bash
# bench/prebuilt.sh: the "prebuilt binary" job — lab busybox base, `COPY bin/$TARGETARCH/app`
# of a 20 MB file that differs per platform and per run, two platforms, pushed to a fresh
# registry of its own (`bench_registry` in lib.sh) — built by archway (the `assembled`
# strategy: no engine) and by plain `docker buildx build --platform linux/amd64,linux/arm64
# --push`.
#
#   bench/prebuilt.sh [PAIRS]     (default 7; needs scripts/lab-up)
#
# Prints, for the cold case, each pair (A B alternating after one warm-up pair), the medians,
# the median of the paired ratios archway/buildx (target <= 0.20) and each image's compressed
# size (target: archway at most 10% larger); for the warm case (same files, tag exists) the
# median time of archway alone (target <= 0.25 s); and `archway plan` latency (target
# <= 100 ms). Not a test: numbers only.
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
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $base
ARG TARGETARCH
COPY bin/\$TARGETARCH/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
DOCKERFILE

# A fresh 20 MB "binary" per platform: compressible like a real one (half random, half text).
fresh_binaries() {
    for arch in amd64 arm64; do
        mkdir -p "$ctx/bin/$arch"
        { head -c 10485760 /dev/urandom; (yes "archway $arch $RANDOM $(date +%s%N)" || true) | head -c 10485760; } > "$ctx/bin/$arch/app"
        chmod 0755 "$ctx/bin/$arch/app"
    done
}

# Compressed size of an image: every platform's config and layers, from the registry.
image_size() {
    local ref=$1 repo=${1%:*} tag=${1##*:} total=0
    local index
    index=$(curl -fsS -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json' \
        "http://$registry/v2/${repo#"$registry"/}/manifests/$tag")
    for d in $(echo "$index" | python3 -c 'import json,sys; [print(m["digest"]) for m in json.load(sys.stdin)["manifests"] if m.get("platform",{}).get("os")!="unknown"]'); do
        s=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
            "http://$registry/v2/${repo#"$registry"/}/manifests/$d" |
            python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["config"]["size"]+sum(l["size"] for l in m["layers"]))')
        total=$((total + s))
    done
    echo "$total"
}

declare -a ta tb ratios
echo "cold: $pairs pairs after a warm-up pair, 2 platforms x 20 MB, pushed to $registry"
for i in $(seq 0 "$pairs"); do
    fresh_binaries
    s=$(now); run_archway_push "$registry/bench/prebuilt-archway:run$i"; e=$(now); a=$(elapsed "$s" "$e")
    fresh_binaries
    s=$(now); run_buildx_push "$registry/bench/prebuilt-buildx:run$i"; e=$(now); b=$(elapsed "$s" "$e")
    if [[ $i -eq 0 ]]; then
        printf 'warm-up: archway %6.2fs  buildx %6.2fs\n' "$a" "$b"
        continue
    fi
    ta+=("$a"); tb+=("$b"); ratios+=("$(awk "BEGIN {print $a / $b}")")
    printf 'pair %d: archway %6.2fs  buildx %6.2fs  ratio %.3f\n' "$i" "$a" "$b" "${ratios[-1]}"
done
sa=$(image_size "$registry/bench/prebuilt-archway:run$pairs")
sb=$(image_size "$registry/bench/prebuilt-buildx:run$pairs")
printf 'median archway %6.3fs, buildx %6.3fs; median paired ratio archway/buildx %.3f (target <= 0.20)\n' \
    "$(median "${ta[@]}")" "$(median "${tb[@]}")" "$(median "${ratios[@]}")"
printf 'compressed size: archway %d B, buildx %d B, archway/buildx %.3f (target <= 1.10)\n' "$sa" "$sb" "$(awk "BEGIN {print $sa / $sb}")"

declare -a tw
tag="$registry/bench/prebuilt-archway:warm"
run_archway_push "$tag"
for i in $(seq 1 "$pairs"); do
    s=$(now); run_archway_push "$tag"; e=$(now); tw+=("$(elapsed "$s" "$e")")
done
printf 'warm (same files, tag exists): median archway %6.3fs over %d runs (target <= 0.25 s)\n' "$(median "${tw[@]}")" "$pairs"

declare -a tp
for i in $(seq 1 "$pairs"); do
    s=$(now); "$archway" plan "$ctx" --platform linux/amd64,linux/arm64 >/dev/null 2>&1 || true; e=$(now)
    tp+=("$(elapsed "$s" "$e")")
done
printf 'archway plan: median %6.3fs over %d runs (target <= 0.100 s)\n' "$(median "${tp[@]}")" "$pairs"
