#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, pg_ctl, postgres) and
# PgBouncer (the tests run the planner and the flags provider through it)
# and Alembic with psycopg2 (the tests apply planner export's revisions with
# it) exist, installing Debian's packages for what is missing. Prints nothing
# when they are already there.
set -euo pipefail

have() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }
have_pgbouncer() { command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; }

packages=()
have_pgbouncer || packages+=(pgbouncer)
# The tests run Debian's alembic as /usr/bin/python3 -m alembic, whatever
# python3 is first in PATH.
have_alembic() { /usr/bin/python3 -c 'import alembic, psycopg2' 2>/dev/null; }
have_alembic || packages+=(python3-alembic python3-psycopg2)

server_found() {
  if command -v pg_config >/dev/null && have "$(pg_config --bindir)"; then return 0; fi
  for d in /usr/lib/postgresql/*/bin; do have "$d" && return 0; done
  command -v initdb >/dev/null && have "$(dirname "$(command -v initdb)")"
}
if [ -n "${PLANNER_PG_BINDIR:-}" ]; then
  if ! have "$PLANNER_PG_BINDIR"; then
    echo "PLANNER_PG_BINDIR=$PLANNER_PG_BINDIR has no initdb, pg_ctl and postgres" >&2
    exit 1
  fi
elif ! server_found; then
  packages+=(postgresql)
fi
[ ${#packages[@]} -eq 0 ] && exit 0

echo "Installing Debian's ${packages[*]} package(s)..." >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
  else
    echo "Cannot install ${packages[*]}: not root and no passwordless sudo. Install them yourself (Debian: apt-get install ${packages[*]}; PLANNER_PG_BINDIR may point at other server binaries)." >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "Cannot install ${packages[*]}: apt-get not found. Install PostgreSQL 14 or later (set PLANNER_PG_BINDIR to its bin directory) and PgBouncer." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The packages' own services are not used; tests start throwaway ones.
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
if [ -z "${PLANNER_PG_BINDIR:-}" ] && ! server_found; then
  echo "apt-get install postgresql finished but no server binaries were found" >&2
  exit 1
fi
have_pgbouncer || { echo "apt-get install pgbouncer finished but no pgbouncer was found" >&2; exit 1; }
have_alembic || { echo "apt-get install python3-alembic python3-psycopg2 finished but /usr/bin/python3 cannot import alembic and psycopg2" >&2; exit 1; }
