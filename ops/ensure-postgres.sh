#!/usr/bin/env bash
# Makes a PostgreSQL server reachable for the test suite at TEST_DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/test). Already reachable: nothing to do.
# Otherwise, as root on Debian/Ubuntu: installs Debian's postgresql package, starts the
# cluster, allows trust auth on loopback and creates the `test` database. Otherwise it
# stops with a one-line instruction.
set -euo pipefail
url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
here="$(cd "$(dirname "$0")/.." && pwd)"
reachable() {
  (cd "$here" && node -e "
    const pg = require('pg');
    const c = new pg.Client({ connectionString: process.argv[1], connectionTimeoutMillis: 3000 });
    c.connect().then(() => c.end()).then(() => process.exit(0), () => process.exit(1));
  " "$url") >/dev/null 2>&1
}
reachable && exit 0
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  echo "agentry: cannot connect to TEST_DATABASE_URL ($url): start that server or unset TEST_DATABASE_URL" >&2
  exit 1
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "agentry: installing PostgreSQL from Debian's packages for the tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  ver="$(ls /etc/postgresql | sort -V | tail -n 1)"
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! grep -q "agentry-test" "$hba"; then
    # Tests connect as postgres over loopback without a password (as on CI machines).
    sed -i '1i host all all 127.0.0.1/32 trust # agentry-test\nhost all all ::1/128 trust # agentry-test' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  for _ in $(seq 1 30); do reachable && break; su postgres -c "psql -qc 'select 1'" >/dev/null 2>&1 && break; sleep 1; done
  su postgres -c "psql -qtc \"select 1 from pg_database where datname='test'\"" | grep -q 1 || su postgres -c "createdb test"
  reachable && exit 0
fi
echo "agentry: tests need PostgreSQL at $url: install it (Debian/Ubuntu: sudo apt-get install postgresql, trust auth on 127.0.0.1, createdb test) or set TEST_DATABASE_URL" >&2
exit 1
