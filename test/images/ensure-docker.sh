#!/usr/bin/env bash
# Makes sure a Docker engine answers for the suites that start containers
# (`make test`, `make test-integration`):
#   1. any engine that already answers `docker info` is used as it is:
#      Docker Engine, Docker Desktop, Colima, rootless Docker, Podman's Docker
#      socket, or whatever DOCKER_HOST or the current docker context names;
#   2. otherwise, as root on Debian/Ubuntu, it installs docker.io (and
#      debootstrap, which test/images/build.sh needs) and starts dockerd
#      without a bridge (containers use host networking, so all traffic
#      stays on loopback);
#   3. otherwise it says what to install and exits 1.
# Portable (Linux, macOS): bash 3.2, no GNU-only flags.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*"; }
need_docker() {
	log "no Docker engine answers: $*" >&2
	cat >&2 <<'MSG'
[ensure-docker] `make test` starts MySQL, PostgreSQL, RabbitMQ and Kafka in containers
[ensure-docker] (Testcontainers), so it needs a Docker engine. Install one of:
[ensure-docker]   Linux:  Docker Engine (apt-get install docker.io, dnf install moby-engine),
[ensure-docker]           rootless Docker, or Podman with its Docker socket
[ensure-docker]           (systemctl --user start podman.socket;
[ensure-docker]            export DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock)
[ensure-docker]   macOS:  Docker Desktop or Colima (brew install colima docker && colima start)
[ensure-docker] then rerun. `make test-unit` and `make run` need no Docker.
MSG
	exit 1
}

SECONDS=0
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	log "engine answering (${DOCKER_HOST:-$(docker context show 2>/dev/null || echo default)}, ${SECONDS}s)"
	exit 0
fi

# Without a docker CLI, an engine may still answer on a socket (Podman).
if ! command -v docker >/dev/null 2>&1 && [ -n "${DOCKER_HOST:-}" ] && command -v curl >/dev/null 2>&1; then
	case $DOCKER_HOST in
	unix://*)
		if curl -s -m 5 --unix-socket "${DOCKER_HOST#unix://}" http://d/_ping >/dev/null; then
			log "engine answering on $DOCKER_HOST (no docker CLI)"
			exit 0
		fi
		;;
	esac
fi

# Nothing answers: install and start dockerd only where that is ours to do.
if [ "$(id -u)" -ne 0 ] || [ "$(uname -s)" != Linux ] || ! command -v apt-get >/dev/null 2>&1; then
	need_docker "this script only installs or starts dockerd as root on Debian/Ubuntu"
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
	t=$SECONDS
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
		[ $updated = 0 ] || need_docker "apt-get could not install ${missing[*]}"
		apt-get update -qq
		install || need_docker "apt-get could not install ${missing[*]}"
	fi
	log "installed ${missing[*]} in $((SECONDS - t))s"
fi
if docker info >/dev/null 2>&1; then
	log "engine answering (${SECONDS}s)"
	exit 0
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

t=$SECONDS
logfile=${DOCKERD_LOG:-/var/log/usersvc-dockerd.log}
# No bridge, no iptables, no masquerading: there is no network to reach and
# containers must not get private-range addresses.
nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$logfile" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
	if docker info >/dev/null 2>&1; then
		log "dockerd (pid $pid) answering after $((SECONDS - t))s, total ${SECONDS}s"
		exit 0
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		log "dockerd exited; last lines of $logfile:" >&2
		tail -n 30 "$logfile" >&2 || true
		need_docker "dockerd did not start"
	fi
	sleep 0.1
done
log "dockerd did not answer within 60s; last lines of $logfile:" >&2
tail -n 30 "$logfile" >&2 || true
need_docker "dockerd did not answer"
