#!/usr/bin/env bash
# Makes a Docker engine answer on this machine for the container suites:
# installs Debian's docker.io and debootstrap when missing and starts dockerd
# without a bridge (containers use host networking, so all traffic stays on
# loopback). Idempotent: does nothing but check when the engine already runs.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

start=$(now)

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		log "missing ${missing[*]} and not root: install them, then rerun" >&2
		exit 1
	fi
	t=$(now)
	export DEBIAN_FRONTEND=noninteractive
	install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
	# Refresh the package lists only when apt cannot find the packages, or
	# when the install fails (lists old enough to name removed versions).
	updated=0
	if ! apt-get install -y --no-install-recommends --dry-run "${missing[@]}" >/dev/null 2>&1; then
		apt-get update -qq
		updated=1
	fi
	if ! install; then
		[ $updated = 0 ] || exit 1
		apt-get update -qq
		install
	fi
	log "installed ${missing[*]} in $(since "$t")"
fi

if docker info >/dev/null 2>&1; then
	log "engine already answering ($(since "$start"))"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	log "docker info fails and only root may start dockerd here" >&2
	exit 1
fi

# A daemon that was killed leaves pid files behind, and where nothing reaps
# it its process lingers as a zombie that dockerd takes for a running daemon.
alive() { # pid: true when the process exists and is not a zombie
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}
for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
	if [ -f "$pidfile" ] && ! alive "$(cat "$pidfile" 2>/dev/null)"; then
		log "removing stale $pidfile"
		rm -f "$pidfile"
	fi
done

t=$(now)
logfile=${DOCKERD_LOG:-/var/log/usersvc-dockerd.log}
# No bridge, no iptables, no masquerading: there is no network to reach and
# containers must not get private-range addresses.
nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$logfile" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
	if docker info >/dev/null 2>&1; then
		log "dockerd (pid $pid) answering after $(since "$t"), total $(since "$start")"
		exit 0
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		log "dockerd exited; last lines of $logfile:" >&2
		tail -n 30 "$logfile" >&2 || true
		exit 1
	fi
	sleep 0.1
done
log "dockerd did not answer within 60s; last lines of $logfile:" >&2
tail -n 30 "$logfile" >&2 || true
exit 1
