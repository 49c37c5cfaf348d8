#!/bin/sh
# Starts MariaDB with the variables of the official mysql/mariadb images:
#   MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD
#   MARIADB_ALLOW_EMPTY_ROOT_PASSWORD / MYSQL_ALLOW_EMPTY_PASSWORD
#   MARIADB_RANDOM_ROOT_PASSWORD / MYSQL_RANDOM_ROOT_PASSWORD
#   MARIADB_DATABASE / MYSQL_DATABASE
#   MARIADB_USER / MYSQL_USER and MARIADB_PASSWORD / MYSQL_PASSWORD
# plus MYSQL_TCP_PORT, which is required: the container uses the host's
# network, so the caller picks a free port (3306 is usually taken).
# Extra arguments starting with "-" go to mariadbd.
set -eu

pick() { # first non-empty of the named variables
	for name in "$@"; do
		eval "v=\${$name:-}"
		if [ -n "$v" ]; then
			printf '%s' "$v"
			return
		fi
	done
}
die() {
	echo "entrypoint: $*" >&2
	exit 1
}
# SQL string literal and identifier quoting.
lit() { printf "'%s'" "$(printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/''/g")"; }
ident() { printf '`%s`' "$(printf '%s' "$1" | sed -e 's/`/``/g')"; }

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
	exec "$@" # a command, not server options
fi

port=${MYSQL_TCP_PORT:-}
case "$port" in
'' | *[!0-9]*) die "set MYSQL_TCP_PORT to a free TCP port (got '$port')" ;;
esac

root_pw=$(pick MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD)
allow_empty=$(pick MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MYSQL_ALLOW_EMPTY_PASSWORD)
random=$(pick MARIADB_RANDOM_ROOT_PASSWORD MYSQL_RANDOM_ROOT_PASSWORD)
if [ -z "$root_pw" ] && [ -n "$random" ]; then
	root_pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
	echo "GENERATED ROOT PASSWORD: $root_pw"
fi
if [ -z "$root_pw" ] && [ -z "$allow_empty" ]; then
	die "set MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD), MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD"
fi
database=$(pick MARIADB_DATABASE MYSQL_DATABASE)
user=$(pick MARIADB_USER MYSQL_USER)
password=$(pick MARIADB_PASSWORD MYSQL_PASSWORD)
if [ -n "$user" ] && [ -z "$password" ]; then
	die "MYSQL_USER is set without MYSQL_PASSWORD"
fi
if [ "$user" = root ]; then
	die "MYSQL_USER must not be root; use MYSQL_ROOT_PASSWORD"
fi

# dash's echo would interpret backslashes in passwords.
sql() { printf '%s\n' "$1"; }

# The statements are idempotent, so a restarted container runs them again.
init=/run/mysqld/init.sql
umask 077
{
	sql "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY $(lit "$root_pw");"
	sql "ALTER USER 'root'@'%' IDENTIFIED BY $(lit "$root_pw");"
	sql "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
	sql "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($(lit "$root_pw"));"
	if [ -n "$database" ]; then
		sql "CREATE DATABASE IF NOT EXISTS $(ident "$database");"
	fi
	if [ -n "$user" ]; then
		sql "CREATE USER IF NOT EXISTS $(lit "$user")@'%' IDENTIFIED BY $(lit "$password");"
		sql "ALTER USER $(lit "$user")@'%' IDENTIFIED BY $(lit "$password");"
		if [ -n "$database" ]; then
			sql "GRANT ALL ON $(ident "$database").* TO $(lit "$user")@'%';"
		fi
	fi
} >"$init"

exec mariadbd --port="$port" --init-file="$init" "$@"
