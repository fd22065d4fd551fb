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
