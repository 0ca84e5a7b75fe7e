#!/usr/bin/env bash
# Usage: gotest.sh LABEL [go test flags...] — runs `go test -v` on every
# package with the output kept in .cache/LABEL.log, and prints a summary: the
# package lines, the PostgreSQL servers the tests started and used, failures
# in full, and a closing "N passed, N failed, N skipped" line.
set -uo pipefail
label=$1; shift
mkdir -p .cache
log=.cache/$label.log
go test -v "$@" ./... >"$log" 2>&1
rc=$?
grep -E '^(ok|FAIL|\?) ' "$log"
grep -E '^pgtest: ' "$log" | sort | uniq -c | sed 's/^ */  /'
if [ $rc -ne 0 ]; then
  echo "--- failures (full log: $log)"
  grep -E -B2 -A30 -- '--- FAIL|^panic:|FATAL|build failed|\[setup failed\]' "$log" | head -400
fi
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
echo "$label: $passed passed, $failed failed, $skipped skipped"
exit $rc
