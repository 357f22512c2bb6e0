#!/usr/bin/env bash
# Release builds carry no fault injection code: the `failpoints` feature (which turns on
# `fail/failpoints`) is for the test suite only. Checks the dependency graph of a default
# build (seconds, no compilation) and, given a built `flowkey` binary, its symbols: without
# the feature `fail_point!` compiles to nothing and nothing calls into the fail crate's
# registry, so the linker keeps none of it.
#
#   scripts/check-no-failpoints.sh                      # the default features' graph
#   scripts/check-no-failpoints.sh target/release/flowkey   # and that binary's symbols
#   CHECK_FEATURES=failpoints scripts/check-no-failpoints.sh  # must fail (shows the check bites)
set -euo pipefail
cd "$(dirname "$0")/.."

FEATURES=()
if [[ -n "${CHECK_FEATURES:-}" ]]; then
  FEATURES=(--features "$CHECK_FEATURES")
fi
# Normal edges only: dev-dependencies are not linked into the binary.
graph=$(cargo tree --locked -e normal,features -i fail "${FEATURES[@]}")
if grep -q 'fail feature "failpoints"' <<<"$graph"; then
  echo "check-no-failpoints: the build checked enables fail/failpoints:" >&2
  echo "$graph" >&2
  exit 1
fi
echo "check-no-failpoints: the default build's graph has no fail/failpoints"

if [[ $# -gt 0 ]]; then
  binary=$1
  symbols=$(nm --demangle "$binary" | grep -E ' fail::(eval|REGISTRY|FailScenario|FailPointRegistry)' || true)
  if [[ -n "$symbols" ]]; then
    echo "check-no-failpoints: $binary contains the fail crate's registry:" >&2
    head -5 <<<"$symbols" >&2
    exit 1
  fi
  echo "check-no-failpoints: $binary has no fail registry symbols"
fi
