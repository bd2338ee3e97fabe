#!/usr/bin/env bash
# One libFuzzer campaign of one target, with the options fuzz/CAMPAIGNS.md records.
#
# Usage (from anywhere): fuzz/campaign.sh TARGET [SECONDS] [SANITIZER]
#   SECONDS   default 600; SANITIZER default address (or none).
# Corpus: fuzz/corpus/TARGET (seed it first: see README.md). Crashes, OOMs and timeouts:
# fuzz/artifacts/TARGET/. The libFuzzer log: fuzz/logs/TARGET.log.
set -euo pipefail
target=$1
seconds=${2:-600}
sanitizer=${3:-address}
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
features=()
case $target in
    # The model-file targets need the engine (burn); the others build without it. The
    # engine build has its own target folder, so that it can build while a file-format
    # campaign rebuilds its target (cargo locks a target folder per build).
    dimodel | keras_h5 | checkpoint | train_config)
        features=(--features engine --target-dir "$fuzz_dir/target/engine") ;;
esac
mkdir -p "$fuzz_dir/corpus/$target" "$fuzz_dir/artifacts/$target" "$fuzz_dir/logs"
# The harnesses write each input to a fresh temporary folder: keep that in memory.
export TMPDIR=${TMPDIR:-/dev/shm/deepinterp-fuzz}
mkdir -p "$TMPDIR"
# Stable Rust: cargo-fuzz passes -Z flags (sanitizer, coverage passes).
export RUSTC_BOOTSTRAP=1
# Our library's budget for buffers sized from headers: below -malloc_limit_mb, so an
# allocation the library let through past its own check is a finding.
export DEEPINTERP_MEMORY_BUDGET=1G
cd "$fuzz_dir/.."
# Which code this campaign fuzzed (a campaign's jobs re-run the binary: rebuilding it
# mid-campaign changes the code of the later jobs).
echo "campaign $target: $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates fuzz/fuzz_targets || echo '+changes')" \
    >> "$fuzz_dir/logs/campaigns.txt"
cargo fuzz run -s "$sanitizer" -a --codegen-units 16 "${features[@]}" "$target" \
    "$fuzz_dir/corpus/$target" -- \
    -max_total_time="$seconds" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -artifact_prefix="$fuzz_dir/artifacts/$target/" \
    2>&1 | tee "$fuzz_dir/logs/$target.log"
echo "campaign $target ended $(date -u +%FT%TZ): $(grep -E '^#[0-9]+: cov' "$fuzz_dir/logs/$target.log" | tail -n 1)" \
    >> "$fuzz_dir/logs/campaigns.txt"
