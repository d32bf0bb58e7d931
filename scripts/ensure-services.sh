#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) answer.
# On a machine where nothing listens there, installs them from Debian and starts them.
# Each test run then creates its own database and Redis key prefix and removes them (tests/conftest.py).
set -euo pipefail
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! listening 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  conf=/etc/postgresql/$ver/main/pg_hba.conf
  # Local test server only: trust on loopback, as CI expects.
  if ! grep -q "tiepdan-test" "$conf"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # tiepdan-test\nhost all all ::1/128 trust # tiepdan-test' "$conf"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do listening 5432 && break; sleep 1; done
  listening 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
  psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
fi

if ! listening 6379; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing Redis"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
  mkdir -p /tmp/tiepdan-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/tiepdan-redis --logfile /tmp/tiepdan-redis/redis.log
  for _ in $(seq 1 30); do listening 6379 && break; sleep 1; done
  listening 6379 || { echo "Redis did not start" >&2; exit 1; }
fi
