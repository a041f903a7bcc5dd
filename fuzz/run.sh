#!/usr/bin/env bash
# Long-running property fuzzing (stable Rust): runs the property suite
# tests/properties.rs in a release build, round after round, for MINUTES minutes
# (default 5). Each round runs every property with PROPTEST_CASES cases and a fresh
# seed. The build keeps overflow checks and debug assertions on (an overflow is a
# panic, as in `cargo test`) and lives in its own target directory, target/fuzz, so it
# never invalidates the normal release build.
#
#   fuzz/run.sh [MINUTES]        FUZZ_CASES=N sets PROPTEST_CASES per round (20000)
#
# Prints one line per failing round (with its seed and log), then the summary
#   fuzz: <cases> cases, <failures> failures
# and exits 1 if any property failed. proptest shrinks a failing case and saves its
# seed in tests/properties.proptest-regressions, which every later run (cargo test
# included) replays first: commit that file with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${1:-5}"
cases_per_round="${FUZZ_CASES:-20000}"
if ! [[ "$minutes" =~ ^[0-9]+$ && "$cases_per_round" =~ ^[0-9]+$ ]]; then
  echo "usage: fuzz/run.sh [MINUTES]   (FUZZ_CASES=N for cases per round)" >&2
  exit 64
fi
export CARGO_TARGET_DIR=target/fuzz
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
export CARGO_PROFILE_RELEASE_LTO=false
logs=target/fuzz/logs
mkdir -p "$logs"
regressions=tests/properties.proptest-regressions
before=$(cat "$regressions" 2>/dev/null || true)

echo "fuzz: building the property suite (release)"
cargo test --release --locked --test properties --no-run --quiet

deadline=$(( $(date +%s) + minutes * 60 ))
rounds=0 cases=0 failures=0
while (( $(date +%s) < deadline )); do
  rounds=$((rounds + 1))
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  log="$logs/round-$rounds.log"
  status=0
  PROPTEST_CASES="$cases_per_round" PROPTEST_RNG_SEED="$seed" FUZZ_REPORT_CASES=1 \
    cargo test --release --locked --test properties --quiet -- --nocapture >"$log" 2>&1 \
    || status=$?
  ran=$(grep -o 'fuzz-cases: [0-9]*' "$log" | awk '{n += $2} END{print n + 0}')
  cases=$((cases + ran))
  result=$(grep -E '^test result: ' "$log" | tail -1 || true)
  failed=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$result")
  if [[ -z "$result" ]]; then
    failed=1 # the test binary itself died (abort, stack overflow, build error)
  fi
  if (( status != 0 || failed > 0 )); then
    failures=$((failures + (failed > 0 ? failed : 1)))
    echo "fuzz: round $rounds (PROPTEST_RNG_SEED=$seed) failed: see $log"
    grep -E '^(test .* FAILED|minimal failing input|thread .* panicked)' "$log" | head -20 || true
  else
    rm -f "$log"
  fi
done

echo "fuzz: $rounds rounds of $cases_per_round cases per property in $minutes min"
if [[ "$(cat "$regressions" 2>/dev/null || true)" != "$before" ]]; then
  echo "fuzz: new failing seeds saved in $regressions: commit it with the fix"
fi
echo "fuzz: $cases cases, $failures failures"
(( failures == 0 ))
