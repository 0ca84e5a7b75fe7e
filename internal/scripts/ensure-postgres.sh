#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, pg_ctl, postgres) exist,
# installing Debian's packages when none are found. Prints nothing when they
# are already there.
set -euo pipefail

have() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

if [ -n "${PLANNER_PG_BINDIR:-}" ]; then
  have "$PLANNER_PG_BINDIR" && exit 0
  echo "PLANNER_PG_BINDIR=$PLANNER_PG_BINDIR has no initdb, pg_ctl and postgres" >&2
  exit 1
fi
if command -v pg_config >/dev/null && have "$(pg_config --bindir)"; then exit 0; fi
for d in /usr/lib/postgresql/*/bin; do have "$d" && exit 0; done
if command -v initdb >/dev/null && have "$(dirname "$(command -v initdb)")"; then exit 0; fi

echo "No PostgreSQL server binaries found; installing Debian's postgresql package..." >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
  else
    echo "Cannot install PostgreSQL: not root and no passwordless sudo. Install it yourself (Debian: apt-get install postgresql) or set PLANNER_PG_BINDIR." >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "Cannot install PostgreSQL: apt-get not found. Install PostgreSQL 14 or later and set PLANNER_PG_BINDIR to its bin directory." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The package's own cluster is not used; tests start throwaway ones.
$sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
for d in /usr/lib/postgresql/*/bin; do have "$d" && { echo "Installed PostgreSQL in $d" >&2; exit 0; }; done
echo "apt-get install postgresql finished but no server binaries were found" >&2
exit 1
