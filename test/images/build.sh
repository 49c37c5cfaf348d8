#!/usr/bin/env bash
# Builds the container images the test suites use on machines without a
# registry (the body of `make test-images`). Nothing is pulled: Debian
# packages are fetched on the host by debootstrap, Go binaries are built on
# the host, and every `docker build` runs with --network none.
#
#   test/images/build.sh [rootfs|mariadb|postgres|rabbitmq|redis|kfake|service|all]...   (default: all)
#
# Idempotent: a root filesystem image that exists is kept; an image built
# from a Dockerfile is rebuilt only when its inputs changed (their hash is
# kept in the label org.usersvc.inputs). Prints the time of every phase.
#
# Images:
#   usersvc-test/debian:bookworm        Debian minbase (docker import)
#   usersvc-test/mariadb-rootfs:10.11   Debian + mariadb-server-core, data dir initialised
#   usersvc-test/mariadb:10.11          the above + test config + entrypoint
#   usersvc-test/postgres-rootfs:15     Debian + postgresql-15, data directory initialised
#   usersvc-test/postgres:15            the above + test config + entrypoint
#   usersvc-test/rabbitmq-rootfs:3.10   Debian + rabbitmq-server
#   usersvc-test/rabbitmq:3.10          the above + entrypoint
#   usersvc-test/redis-rootfs:7.0       Debian + redis-server
#   usersvc-test/redis:7.0              the above + entrypoint
#   usersvc-test/kfake:dev              kfake broker FROM scratch
#   usersvc:dev                         the service (deploy/Dockerfile, local bases)
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
# USERSVC_IMAGES_WORK (scratch and package cache, default /var/tmp/usersvc-images).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# The Go toolchain go.mod's toolchain line pins, when run directly too: the
# binaries baked into the images are built with it.
GOTOOLCHAIN=${GOTOOLCHAIN:-$(sed -n 's/^toolchain //p' "$root/go.mod")}
export GOTOOLCHAIN
images=$root/test/images
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=${USERSVC_IMAGES_WORK:-/var/tmp/usersvc-images}
suite=bookworm

BASE_IMAGE=usersvc-test/debian:bookworm
MARIADB_ROOTFS_IMAGE=usersvc-test/mariadb-rootfs:10.11
MARIADB_IMAGE=usersvc-test/mariadb:10.11
POSTGRES_ROOTFS_IMAGE=usersvc-test/postgres-rootfs:15
POSTGRES_IMAGE=usersvc-test/postgres:15
RABBITMQ_ROOTFS_IMAGE=usersvc-test/rabbitmq-rootfs:3.10
RABBITMQ_IMAGE=usersvc-test/rabbitmq:3.10
REDIS_ROOTFS_IMAGE=usersvc-test/redis-rootfs:7.0
REDIS_IMAGE=usersvc-test/redis:7.0
KFAKE_IMAGE=usersvc-test/kfake:dev
SERVICE_IMAGE=${USERSVC_IMAGE:-usersvc:dev}

log() { printf '[test-images] %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
image_label() { docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

# Paths left out of imported root filesystems: package lists, caches and
# documentation take more than half of a minbase tree.
tar_rootfs() {
	tar -C "$1" --numeric-owner \
		--exclude=./var/lib/apt/lists --exclude=./var/cache/apt \
		--exclude=./usr/share/doc --exclude=./usr/share/man \
		--exclude=./usr/share/locale --exclude=./usr/share/info \
		--exclude=./proc --exclude=./sys --exclude=./dev \
		-c .
}

debootstrap_into() { # dir, extra debootstrap args...
	local dir=$1
	shift
	rm -rf "$dir"
	mkdir -p "$work/debs"
	debootstrap --variant=minbase --cache-dir="$work/debs" "$@" "$suite" "$dir" "$mirror" \
		>"$dir.log" 2>&1 || {
		tail -n 30 "$dir.log" >&2
		return 1
	}
}

# A Dockerfile build with no network, skipped when an image with the same
# input hash exists.
build_if_changed() { # image, inputs-hash, context, docker build args...
	local image=$1 hash=$2 context=$3
	shift 3
	if [ "$(image_label "$image" org.usersvc.inputs)" = "$hash" ]; then
		log "$image is up to date"
		return 0
	fi
	local previous
	previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
	docker build --network none --label "org.usersvc.inputs=$hash" -t "$image" "$@" "$context" >"$work/build.log" 2>&1 || {
		tail -n 40 "$work/build.log" >&2
		return 1
	}
	# The replaced image is left untagged; drop it unless a container uses it.
	if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
		docker rmi "$previous" >/dev/null 2>&1 || true
	fi
	log "built $image"
}

# One debootstrap serves both root filesystems: the Debian base is imported
# first, then the MariaDB packages are added to the same tree with apt in a
# chroot, and that is imported as the MariaDB root filesystem.
phase_rootfs() {
	local need_base=1 need_mariadb=1
	have_image "$BASE_IMAGE" && need_base=0
	have_image "$MARIADB_ROOTFS_IMAGE" && need_mariadb=0
	if [ $need_base = 0 ] && [ $need_mariadb = 0 ]; then
		log "$BASE_IMAGE and $MARIADB_ROOTFS_IMAGE exist"
		return 0
	fi
	local dir=$work/rootfs t
	t=$(now)
	debootstrap_into "$dir"
	log "debootstrap $suite minbase: $(since "$t")"
	if [ $need_base = 1 ]; then
		tar_rootfs "$dir" | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
		log "imported $BASE_IMAGE"
	fi
	if [ $need_mariadb = 1 ]; then
		t=$(now)
		# The data directory is created here with the test settings (redo log
		# size), so that containers start in a fraction of a second.
		install -D -m 0644 "$images/mariadb/test.cnf" "$dir/etc/mysql/mariadb.conf.d/90-test.cnf"
		# The -core packages: mariadb-server would add perl and galera, 3x larger.
		chroot "$dir" sh -eu -c '
			export DEBIAN_FRONTEND=noninteractive
			apt-get install -y -q --no-install-recommends mariadb-server-core mariadb-client-core >/var/tmp/apt.log 2>&1 ||
				{ tail -n 30 /var/tmp/apt.log >&2; exit 1; }
			getent group mysql >/dev/null || groupadd --system mysql
			getent passwd mysql >/dev/null ||
				useradd --system --gid mysql --home-dir /var/lib/mysql --shell /usr/sbin/nologin mysql
			mkdir -p /var/lib/mysql /run/mysqld
			chown mysql:mysql /var/lib/mysql /run/mysqld
			# --force: the chroot has no /etc/hosts to resolve its name with.
			mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db --force \
				--auth-root-authentication-method=socket >/var/tmp/install-db.log 2>&1 ||
				{ cat /var/tmp/install-db.log >&2; exit 1; }
			rm -f /var/tmp/apt.log /var/tmp/install-db.log
		'
		tar_rootfs "$dir" | docker import -c 'ENV LANG=C.UTF-8' - "$MARIADB_ROOTFS_IMAGE" >/dev/null
		log "imported $MARIADB_ROOTFS_IMAGE ($(since "$t") for packages and data directory)"
	fi
	rm -rf "$dir"
}

phase_mariadb() {
	have_image "$MARIADB_ROOTFS_IMAGE" || phase_rootfs
	local hash
	hash=$({
		docker image inspect -f '{{.Id}}' "$MARIADB_ROOTFS_IMAGE"
		cat "$images/mariadb/Dockerfile" "$images/mariadb/test.cnf" "$images/mariadb/entrypoint.sh"
	} | sha256sum | cut -c1-16)
	build_if_changed "$MARIADB_IMAGE" "$hash" "$images/mariadb" \
		--build-arg "ROOTFS_IMAGE=$MARIADB_ROOTFS_IMAGE"
}

# Installs Debian packages into a debootstrap tree without starting any
# service they bring.
chroot_install() { # dir, packages...
	local dir=$1
	shift
	chroot "$dir" sh -eu -c '
		export DEBIAN_FRONTEND=noninteractive
		printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		apt-get install -y -q --no-install-recommends "$@" >/var/tmp/apt.log 2>&1 ||
			{ tail -n 30 /var/tmp/apt.log >&2; exit 1; }
		rm -f /usr/sbin/policy-rc.d /var/tmp/apt.log
	' chroot_install "$@"
}

# PostgreSQL gets a debootstrap tree of its own (the server and its
# libraries on minbase), with a data directory initialised for the superuser
# postgres, so that containers start in a fraction of a second.
postgres_rootfs() {
	if have_image "$POSTGRES_ROOTFS_IMAGE"; then
		log "$POSTGRES_ROOTFS_IMAGE exists"
		return 0
	fi
	local dir=$work/postgres-rootfs t
	t=$(now)
	debootstrap_into "$dir"
	log "debootstrap $suite minbase for PostgreSQL: $(since "$t")"
	t=$(now)
	# No packaged cluster: the image has its own data directory.
	mkdir -p "$dir/etc/postgresql-common/createcluster.d"
	echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.d/usersvc.conf"
	chroot_install "$dir" postgresql-15
	chroot "$dir" sh -eu -c '
		install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
		install -d -o postgres -g postgres -m 2775 /var/run/postgresql
	'
	# initdb as postgres, by uid: the chroot has no login session to su from.
	local ids
	ids=$(chroot "$dir" id -u postgres):$(chroot "$dir" id -g postgres)
	chroot --userspec="$ids" "$dir" env HOME=/var/lib/postgresql \
		/usr/lib/postgresql/15/bin/initdb -D /var/lib/postgresql/data -U postgres \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 || {
		cat "$dir.initdb.log" >&2
		return 1
	}
	echo "include_if_exists = '/etc/postgresql/test.conf'" >>"$dir/var/lib/postgresql/data/postgresql.conf"
	tar_rootfs "$dir" | docker import -c 'ENV LANG=C.UTF-8' - "$POSTGRES_ROOTFS_IMAGE" >/dev/null
	log "imported $POSTGRES_ROOTFS_IMAGE ($(since "$t") for packages and data directory)"
	rm -rf "$dir" "$dir.initdb.log"
}

phase_postgres() {
	postgres_rootfs
	local hash
	hash=$({
		docker image inspect -f '{{.Id}}' "$POSTGRES_ROOTFS_IMAGE"
		cat "$images/postgres/Dockerfile" "$images/postgres/test.conf" "$images/postgres/entrypoint.sh"
	} | sha256sum | cut -c1-16)
	build_if_changed "$POSTGRES_IMAGE" "$hash" "$images/postgres" \
		--build-arg "ROOTFS_IMAGE=$POSTGRES_ROOTFS_IMAGE"
}

# A server on a debootstrap tree of its own: Debian's packages of it and
# their libraries, imported as a root filesystem image. The entrypoints
# configure the servers at start, so nothing else is prepared; a fix-up
# function, when named, edits the tree before the import.
packages_rootfs() { # image, what, fixup ('' for none), packages...
	local image=$1 what=$2 fixup=$3
	shift 3
	if have_image "$image"; then
		log "$image exists"
		return 0
	fi
	local dir=$work/$what-rootfs t
	t=$(now)
	debootstrap_into "$dir"
	log "debootstrap $suite minbase for $what: $(since "$t")"
	t=$(now)
	chroot_install "$dir" "$@"
	[ -z "$fixup" ] || "$fixup" "$dir"
	tar_rootfs "$dir" | docker import -c 'ENV LANG=C.UTF-8' - "$image" >/dev/null
	log "imported $image ($(since "$t") for packages)"
	rm -rf "$dir"
}

# The local image of a server: its root filesystem plus the Dockerfile and
# entrypoint in test/images/NAME, rebuilt when any of them changed.
server_image() { # image, rootfs image, folder under test/images
	local image=$1 rootfs=$2 folder=$3 hash
	hash=$({
		docker image inspect -f '{{.Id}}' "$rootfs"
		cat "$images/$folder/Dockerfile" "$images/$folder/entrypoint.sh"
	} | sha256sum | cut -c1-16)
	build_if_changed "$image" "$hash" "$images/$folder" --build-arg "ROOTFS_IMAGE=$rootfs"
}

# The rabbitmq-server package's own environment file names the node and its
# addresses; the entrypoint sets them from the container's variables instead.
rabbitmq_fixup() { rm -f "$1/etc/rabbitmq/rabbitmq-env.conf"; }

phase_rabbitmq() {
	packages_rootfs "$RABBITMQ_ROOTFS_IMAGE" rabbitmq rabbitmq_fixup rabbitmq-server
	server_image "$RABBITMQ_IMAGE" "$RABBITMQ_ROOTFS_IMAGE" rabbitmq
}

# Redis: Debian's redis-server (7.0 in bookworm), configured by the command
# line.
phase_redis() {
	packages_rootfs "$REDIS_ROOTFS_IMAGE" redis '' redis-server
	server_image "$REDIS_IMAGE" "$REDIS_ROOTFS_IMAGE" redis
}

phase_kfake() {
	local ctx=$work/kfake-context
	rm -rf "$ctx"
	mkdir -p "$ctx/data"
	# Static and reproducible (-trimpath), so the binary's hash says whether
	# the image is current.
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/kfakebroker" ./test/images/kfakebroker)
	cp "$images/kfakebroker/Dockerfile" "$ctx/Dockerfile"
	local hash
	hash=$(cat "$ctx/kfakebroker" "$ctx/Dockerfile" | sha256sum | cut -c1-16)
	build_if_changed "$KFAKE_IMAGE" "$hash" "$ctx"
	rm -rf "$ctx"
}

phase_service() {
	if [ ! -f "$root/cmd/usersvc/main.go" ]; then
		log "SKIP $SERVICE_IMAGE: cmd/usersvc has no main.go yet"
		return 0
	fi
	have_image "$BASE_IMAGE" || phase_rootfs
	local ctx=$work/service-context
	rm -rf "$ctx"
	mkdir -p "$ctx"
	# cgo: confluent-kafka-go links its bundled librdkafka against glibc, so
	# the runtime base is a glibc Debian (the local base here, distroless
	# upstream). The host is bookworm too, so the glibc versions match.
	# A failed build is an error, not a skip: the suites would otherwise run
	# an older image of the service.
	(cd "$root" && CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o "$ctx/usersvc" ./cmd/usersvc)
	cp "$root/go.mod" "$root/go.sum" "$ctx/"
	local hash
	hash=$({
		docker image inspect -f '{{.Id}}' "$BASE_IMAGE"
		cat "$ctx/usersvc" "$root/deploy/Dockerfile"
	} | sha256sum | cut -c1-16)
	build_if_changed "$SERVICE_IMAGE" "$hash" "$ctx" -f "$root/deploy/Dockerfile" \
		--build-arg "BUILDER_IMAGE=$BASE_IMAGE" \
		--build-arg "RUNTIME_IMAGE=$BASE_IMAGE" \
		--build-arg PREBUILT=usersvc
	# The legacy builder keeps the builder stage as an untagged image.
	docker image prune -f --filter dangling=true --filter label=org.usersvc.stage=build >/dev/null
	rm -rf "$ctx"
}

run_phase() {
	local t
	t=$(now)
	"phase_$1"
	log "phase $1: $(since "$t")"
}

main() {
	local phases=("$@")
	[ ${#phases[@]} -gt 0 ] || phases=(all)
	if [ "${phases[*]}" = all ]; then
		phases=(rootfs mariadb postgres rabbitmq redis kfake service)
	fi
	for p in "${phases[@]}"; do
		case $p in
		rootfs | mariadb | postgres | rabbitmq | redis | kfake | service) ;;
		*)
			log "unknown phase '$p' (want rootfs, mariadb, postgres, rabbitmq, redis, kfake, service or all)" >&2
			exit 2
			;;
		esac
	done

	if ! docker info >/dev/null 2>&1; then
		log "no Docker engine answers; run test/images/ensure-docker.sh first" >&2
		exit 1
	fi
	for p in "${phases[@]}"; do
		case $p in rootfs | mariadb | postgres | rabbitmq | redis | service)
			if ! command -v debootstrap >/dev/null 2>&1 && ! { have_image "$BASE_IMAGE" && have_image "$MARIADB_ROOTFS_IMAGE" && have_image "$POSTGRES_ROOTFS_IMAGE" && have_image "$RABBITMQ_ROOTFS_IMAGE" && have_image "$REDIS_ROOTFS_IMAGE"; }; then
				log "debootstrap is missing; run test/images/ensure-docker.sh first" >&2
				exit 1
			fi
			;;
		esac
	done

	mkdir -p "$work"
	local start
	start=$(now)
	for p in "${phases[@]}"; do
		run_phase "$p"
	done
	log "total: $(since "$start")"
}

main "$@"
