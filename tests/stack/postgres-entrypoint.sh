#!/bin/sh
# What the postgres image's docker-entrypoint.sh does, for Debian's PostgreSQL 15 (the stack test has no
# registry to pull that image from): on an empty data folder, initdb (UTF-8, as that image) with POSTGRES_USER and
# POSTGRES_PASSWORD, create POSTGRES_DB and run /docker-entrypoint-initdb.d/*.sql; then run the server,
# reachable with a password from the compose network.
set -eu
bin=/usr/lib/postgresql/15/bin
data=/var/lib/postgresql/data
mkdir -p "$data" /var/run/postgresql
chown postgres "$data" /var/run/postgresql
chmod 700 "$data"
as_postgres() { su postgres -s /bin/sh -c "$*"; }
if [ ! -s "$data/PG_VERSION" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
    chown postgres /tmp/pwfile
    as_postgres "$bin/initdb -D $data -E UTF8 --locale=C.UTF-8 -U $POSTGRES_USER --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256" > /dev/null
    rm /tmp/pwfile
    echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
    as_postgres "$bin/pg_ctl -D $data -o '-c listen_addresses=' -w start" > /dev/null
    as_postgres "psql -v ON_ERROR_STOP=1 -p 5432 -U $POSTGRES_USER -d postgres -c 'CREATE DATABASE \"$POSTGRES_DB\"'"
    for sql in /docker-entrypoint-initdb.d/*.sql; do
        [ -e "$sql" ] && as_postgres "psql -v ON_ERROR_STOP=1 -p 5432 -U $POSTGRES_USER -d $POSTGRES_DB -f $sql"
    done
    as_postgres "$bin/pg_ctl -D $data -m fast -w stop" > /dev/null
fi
exec su postgres -s /bin/sh -c "exec $bin/postgres -D $data -c listen_addresses='*'"
