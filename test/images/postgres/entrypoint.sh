#!/bin/sh
# Starts PostgreSQL with the variables of the official postgres image:
#   POSTGRES_PASSWORD            password of POSTGRES_USER (required unless
#                                POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER                superuser to create (default postgres)
#   POSTGRES_DB                  database to create (default POSTGRES_USER)
#   POSTGRES_HOST_AUTH_METHOD    scram-sha-256 (default with a password) or trust
# plus PGPORT, which is required: the container uses the host's network, so
# the caller picks a free port (5432 is usually taken). The server listens
# on 127.0.0.1 only. Arguments starting with "-" go to postgres (e.g.
# -c name=value), as with the official image.
set -eu

die() {
	echo "entrypoint: $*" >&2
	exit 1
}
# SQL string literal and identifier quoting.
lit() { printf "'%s'" "$(printf '%s' "$1" | sed -e "s/'/''/g")"; }
ident() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/"/""/g')"; }

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
	exec "$@" # a command, not server options
fi

port=${PGPORT:-}
case "$port" in
'' | *[!0-9]*) die "set PGPORT to a free TCP port (got '$port')" ;;
esac

user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
password=${POSTGRES_PASSWORD:-}
auth=${POSTGRES_HOST_AUTH_METHOD:-}
if [ -z "$auth" ]; then
	[ -n "$password" ] || die "set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one"
	auth=scram-sha-256
fi
case "$auth" in
trust | scram-sha-256 | md5) ;;
*) die "POSTGRES_HOST_AUTH_METHOD must be trust, scram-sha-256 or md5 (got '$auth')" ;;
esac

# Loopback TCP with the chosen method; the local socket (the entrypoint's
# own set-up) trusts its own user.
cat >"$PGDATA/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 $auth
host all all ::1/128 $auth
HBA

# The data directory was initialised with the superuser "postgres". The
# set-up runs in single-user mode (no listener, well under a second) and is
# idempotent, so a restarted container runs it again.
setup=$(mktemp)
{
	if [ "$user" != postgres ]; then
		echo "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $(lit "$user")) THEN CREATE ROLE $(ident "$user") SUPERUSER LOGIN; END IF; END \$\$;"
	fi
	if [ -n "$password" ]; then
		echo "ALTER ROLE $(ident "$user") PASSWORD $(lit "$password");"
	fi
} >"$setup"
postgres --single -D "$PGDATA" postgres <"$setup" >/dev/null
rm -f "$setup"
# CREATE DATABASE cannot run inside DO; the listing decides.
if [ "$database" != postgres ] &&
	! echo "SELECT datname FROM pg_database WHERE datname = $(lit "$database");" |
		postgres --single -D "$PGDATA" postgres 2>/dev/null | grep -q "datname = \"$database\""; then
	echo "CREATE DATABASE $(ident "$database") OWNER $(ident "$user");" | postgres --single -D "$PGDATA" postgres >/dev/null
fi

exec postgres -D "$PGDATA" \
	-c listen_addresses=127.0.0.1 -p "$port" "$@"
