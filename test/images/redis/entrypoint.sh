#!/bin/sh
# Starts redis-server as the official redis image does: arguments starting
# with - (or a .conf file) go to redis-server, anything else is run as a
# command. Without arguments redis-server would take 6379 on every
# interface of the host's network, so a port is required: the caller passes
# --port (and --bind 127.0.0.1), the same arguments it gives upstream.
set -eu

if [ "$#" -eq 0 ]; then
	echo "entrypoint: pass redis-server options, at least --port N --bind 127.0.0.1" >&2
	exit 1
fi
case "$1" in
-* | *.conf) exec redis-server "$@" ;;
esac
exec "$@"
