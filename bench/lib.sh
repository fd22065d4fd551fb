# bench/lib.sh: what the benchmark scripts share (sourced, not run).

now() { date +%s.%N; }
# elapsed START END: seconds between two `now`s, 3 decimals.
elapsed() { awk "BEGIN {printf \"%.3f\", $2 - $1}"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# The two-platform push of "$ctx" to REF by each tool (prebuilt.sh, cross.sh).
run_buildx_push() {
    docker buildx build --platform linux/amd64,linux/arm64 --progress quiet \
        --output "type=image,name=$1,push=true" "$ctx" >/dev/null
}
run_archway_push() {
    "$archway" build "$ctx" --platform linux/amd64,linux/arm64 -t "$1" --push >/dev/null 2>&1
}

# bench_registry: starts a registry of the benchmark's own (Debian's docker-registry, in
# memory, empty) on a free loopback port and sets `registry` to its `127.0.0.1:PORT`; the
# script's EXIT trap calls stop_bench_registry (by its pid). The lab's registry is shared
# with the test suite and holds GBs after a day of runs: its garbage collector then stalls
# uploads at random (two concurrent 8 MiB PUTs with curl: 0.2 s to 3.9 s), which both tools'
# pushes pay. An empty registry of its own makes one day's figures comparable with another's.
# Engines treat 127.0.0.0/8 registries as plain HTTP, as they do the lab's.
bench_registry() {
    bench_registry_dir=$(mktemp -d)
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:%s\n' "$port" \
        >"$bench_registry_dir/config.yml"
    docker-registry serve "$bench_registry_dir/config.yml" >"$bench_registry_dir/log" 2>&1 &
    bench_registry_pid=$!
    for _ in $(seq 100); do
        if curl -fs "http://127.0.0.1:$port/v2/" >/dev/null; then
            registry=127.0.0.1:$port
            echo "registry: a fresh one of the benchmark's own at $registry (pid $bench_registry_pid)"
            return
        fi
        sleep 0.1
    done
    echo "bench: docker-registry did not start on 127.0.0.1:$port (log $bench_registry_dir/log)" >&2
    exit 1
}

stop_bench_registry() {
    if [[ -n ${bench_registry_pid:-} ]]; then
        kill "$bench_registry_pid" 2>/dev/null || true
        wait "$bench_registry_pid" 2>/dev/null || true
        rm -rf "$bench_registry_dir"
    fi
}
