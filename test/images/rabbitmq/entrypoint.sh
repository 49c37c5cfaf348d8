#!/bin/sh
# Starts RabbitMQ with the variables of the official rabbitmq image:
#   RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS   (default guest/guest)
#   RABBITMQ_DEFAULT_VHOST                         (default /)
# plus RabbitMQ's own RABBITMQ_NODE_PORT, RABBITMQ_DIST_PORT and
# ERL_EPMD_PORT, which are required: the container uses the host's network,
# so the caller picks free ports (5672, 25672 and 4369 are usually the
# machine's own broker's). Everything listens on 127.0.0.1 only. The
# official image reads the same variables, so a test sets them once for
# both. Arguments that are not options are run as a command instead.
set -eu

die() {
	echo "entrypoint: $*" >&2
	exit 1
}
port() { # name: the value of the variable when it is a port number
	eval "v=\${$1:-}"
	case "$v" in
	'' | *[!0-9]*) die "set $1 to a free TCP port (got '$v')" ;;
	esac
	printf '%s' "$v"
}

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
	exec "$@"
fi

amqp=$(port RABBITMQ_NODE_PORT)
port RABBITMQ_DIST_PORT >/dev/null
port ERL_EPMD_PORT >/dev/null
user=${RABBITMQ_DEFAULT_USER:-guest}
pass=${RABBITMQ_DEFAULT_PASS:-guest}
vhost=${RABBITMQ_DEFAULT_VHOST:-/}
for v in "$user" "$pass" "$vhost"; do
	case "$v" in *"
"*) die "user, password and vhost must be one line each" ;; esac
done

run=/tmp/rabbitmq
mkdir -p "$run"
umask 077
# The new-style configuration: the defaults apply on the first boot, which
# every container's is.
cat >"$run/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:$amqp
default_user = $user
default_pass = $pass
default_vhost = $vhost
loopback_users = none
log.console = true
log.console.level = info
log.file = false
CONF
# No plugins: their listeners (management, prometheus) would take fixed
# ports of the host's network.
echo '[].' >"$run/enabled_plugins"

export RABBITMQ_CONFIG_FILE="$run/rabbitmq.conf"
export RABBITMQ_ENABLED_PLUGINS_FILE="$run/enabled_plugins"
export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-rabbit@localhost}"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE="$run/mnesia" RABBITMQ_LOG_BASE="$run/log"
# Distribution on loopback too; +S 2:2 spares a small machine the
# schedulers it would not use in a test.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +S 2:2 ${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-}"
exec rabbitmq-server "$@"
