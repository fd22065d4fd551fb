#!/usr/bin/env bash
# bench/registry.sh: `archway merge` (2 and 8 platforms) against `docker buildx imagetools
# create`, and `archway promote` (to another repository, and to a new tag in the same one)
# against `skopeo copy --all` and `docker buildx imagetools create`, on the lab registry.
# Prints, per scenario and tool, the median time, the requests made (counted by the test
# proxy of tests/support/proxy.rs) and the ratios archway/other. Not a test: numbers only.
#
#   bench/registry.sh [RUNS]        (default 5, or $BENCH_RUNS; runs scripts/lab-up first, as root)
#
# The benchmark itself is the ignored test in tests/bench_registry.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_RUNS=${1:-${BENCH_RUNS:-5}}

scripts/lab-up
cargo test --release --test bench_registry -- --ignored --nocapture
