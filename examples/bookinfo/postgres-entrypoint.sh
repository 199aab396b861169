#!/bin/sh
# The postgres image's command: on an empty data directory, initdb (superuser postgres, its
# password from POSTGRES_PASSWORD, scram-sha-256 for connections from any address), then the
# server in the foreground. Settings for a throwaway demo database: no fsync, no JIT.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" | initdb -D "$PGDATA" -U postgres --pwfile=/dev/stdin \
        --auth-local=trust --auth-host=scram-sha-256 --locale=C --encoding=UTF8 --no-sync \
        --no-instructions >/dev/null
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c jit=off
