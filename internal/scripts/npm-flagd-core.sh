#!/usr/bin/env bash
# Usage: npm-flagd-core.sh — installs flagd's own evaluator (the npm package
# @openfeature/flagd-core, with its peer @openfeature/core) under
# .cache/flagd-core (once) and prints that directory, for the tests that
# evaluate the flagd export the way flagd's in-process providers do.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
prefix="$root/.cache/flagd-core"
if [ ! -f "$prefix/node_modules/@openfeature/flagd-core/package.json" ]; then
  command -v npm >/dev/null || { echo "npm is needed to install @openfeature/flagd-core (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" "@openfeature/flagd-core@4.0.1" "@openfeature/core@1" >&2
fi
echo "$prefix"
