#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and RabbitMQ are running on their standard
# local ports, installing them from Debian if absent. Idempotent; used by
# scripts/test.sh.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# Wait for another apt (a bench script installing wrk) instead of failing.
APT_WAIT=(-o DPkg::Lock::Timeout=300)

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "==> installing Redis from Debian"
    $SUDO apt-get "${APT_WAIT[@]}" update -qq && $SUDO apt-get "${APT_WAIT[@]}" install -y -qq redis-server redis-tools
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "==> installing PostgreSQL from Debian"
    $SUDO apt-get "${APT_WAIT[@]}" update -qq && $SUDO apt-get "${APT_WAIT[@]}" install -y -qq postgresql postgresql-client
fi

if ! command -v rabbitmq-server >/dev/null; then
    echo "==> installing RabbitMQ from Debian"
    $SUDO apt-get "${APT_WAIT[@]}" update -qq && $SUDO apt-get "${APT_WAIT[@]}" install -y -qq rabbitmq-server
fi
# RabbitMQ: is anything answering AMQP on 5672? (rabbitmqctl is slow to ask)
amqp_up() { timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672' 2>/dev/null; }
if ! amqp_up; then
    echo "==> starting RabbitMQ on 127.0.0.1:5672 (guest/guest)"
    $SUDO rabbitmq-server -detached
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "==> starting Redis on 127.0.0.1:6379 (no persistence)"
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "==> starting PostgreSQL on 127.0.0.1:5432"
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    if [ -z "$version" ]; then
        version=$(ls /usr/lib/postgresql | sort -V | tail -1)
        $SUDO pg_createcluster "$version" main
    fi
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 60); do
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
        break
    fi
    sleep 0.5
done
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
pg_isready -h 127.0.0.1 -p 5432
# RabbitMQ takes some seconds to boot; the broker tests need it listening.
for _ in $(seq 1 120); do amqp_up && break; sleep 0.5; done
amqp_up || { echo "RabbitMQ did not start on 127.0.0.1:5672"; exit 1; }

# The TLS tests need openssl (for a test Redis certificate) and PostgreSQL
# with ssl on (Debian's clusters have it, with the snakeoil certificate);
# turn it on with a certificate of our own if a cluster does not.
if ! command -v openssl >/dev/null; then
    echo "==> installing openssl from Debian"
    $SUDO apt-get "${APT_WAIT[@]}" update -qq && $SUDO apt-get "${APT_WAIT[@]}" install -y -qq openssl
fi
# The clock-skew fault test runs instances under libfaketime.
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]; then
    echo "==> installing faketime from Debian"
    $SUDO apt-get "${APT_WAIT[@]}" update -qq && $SUDO apt-get "${APT_WAIT[@]}" install -y -qq faketime
fi
if [ "$(psql -h 127.0.0.1 -U postgres -qAt -d postgres -c 'SHOW ssl')" != "on" ]; then
    echo "==> turning TLS on in PostgreSQL (a self-signed certificate)"
    datadir=$(psql -h 127.0.0.1 -U postgres -qAt -d postgres -c 'SHOW data_directory')
    $SUDO openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
        -keyout "$datadir/flashcoupon-test.key" -out "$datadir/flashcoupon-test.crt" 2>/dev/null
    $SUDO chown postgres: "$datadir/flashcoupon-test.key" "$datadir/flashcoupon-test.crt" 2>/dev/null || true
    $SUDO chmod 600 "$datadir/flashcoupon-test.key"
    psql -h 127.0.0.1 -U postgres -qAt -d postgres \
        -c "ALTER SYSTEM SET ssl_cert_file = '$datadir/flashcoupon-test.crt'" \
        -c "ALTER SYSTEM SET ssl_key_file = '$datadir/flashcoupon-test.key'" \
        -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null
fi

# The tests connect as postgres over TCP without a password (trust), as the
# machines are set up; make a fresh database for their schemas.
PSQL="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS flashcoupon_test WITH (FORCE)" >/dev/null
$PSQL -d postgres -c "CREATE DATABASE flashcoupon_test" >/dev/null
echo "==> Redis, PostgreSQL and RabbitMQ are up"
