# usersvc — build, run and test. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
# The Go toolchain: go.mod's `toolchain` line is the one pin (Renovate keeps
# it current); the Makefile, .ci/run, test/images/build.sh and the
# Dockerfile's GO_VERSION argument all read it. Set here because a go.env
# with GOTOOLCHAIN=local (as on our machines) ignores go.mod's toolchain
# line; the go command fetches the toolchain once through the module proxy.
# Override with `make test GOTOOLCHAIN=local` to run on the installed Go.
GO_TOOLCHAIN := $(shell sed -n 's/^toolchain //p' go.mod)
export GOTOOLCHAIN ?= $(GO_TOOLCHAIN)
BIN      ?= bin/usersvc
WIRE     := $(GO) tool wire

# Packages whose tests start containers are those whose TestMain hands over
# to test/containers (containers.RunTests or containers.Main): they need a
# Docker engine. Every other package's tests run without one.
CONTAINERS_PKG := github.com/marketplace/usersvc/test/containers
pkgs_docker     = $(shell $(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | \
	awk -v c=$(CONTAINERS_PKG) -v want=$(1) '{ d = ($$1 == c); for (i = 2; i <= NF; i++) if ($$i == c) d = 1; if (d == want) print $$1 }')
DOCKER_PKGS = $(call pkgs_docker,1)
PKGS_UNIT   = $(call pkgs_docker,0)

# Images for the container suites: upstream (mysql:8.4, postgres:16,
# rabbitmq:3.13, redis:7, apache/kafka:3.9.0) where a registry answers; without one
# the suites use the local stand-ins that `make test-images` builds
# (Linux with debootstrap). auto builds them only when Docker Hub does not
# answer; force either with `make test TEST_IMAGES=upstream|local`.
TEST_IMAGES ?= auto
ifeq ($(TEST_IMAGES),local)
export USERS_TEST_MYSQL_IMAGE ?= usersvc-test/mariadb:10.11
export USERS_TEST_KAFKA_IMAGE ?= usersvc-test/kfake:dev
export USERS_TEST_POSTGRES_IMAGE ?= usersvc-test/postgres:15
export USERS_TEST_RABBITMQ_IMAGE ?= usersvc-test/rabbitmq:3.10
export USERS_TEST_REDIS_IMAGE ?= usersvc-test/redis:7.0
endif

# Development profile, for `make run` only: SQLite file, events to stdout,
# loopback located in Switzerland, no authentication (the binary's default
# is AUTH_MODE=jwt, which needs an OAuth2 server). Override any of them on
# the command line. EVENT_BUS=log is explicit: the binary's default bus is
# Kafka and refuses to start without KAFKA_BROKERS.
run: export EVENT_BUS    ?= log
run: export GEO_PROVIDER ?= static
run: export GEO_STATIC   ?= 127.0.0.0/8=CH,::1/128=CH
run: export LOG_FORMAT   ?= text
run: export AUTH_MODE    ?= none

# Further targets (benchmarks, reliability runs) live in mk/*.mk.
include $(wildcard mk/*.mk)

.PHONY: help build run test test-unit test-integration test-images test-images-if-offline docker-engine lint golangci-lint generate clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build the binary into bin/usersvc
	$(GO) build -trimpath -o $(BIN) ./cmd/usersvc

run: build ## build and serve on the embedded defaults (SQLite file, events on stdout, loopback = CH)
	$(BIN) serve

# The engine is checked first: without one `make test` stops at once
# instead of after the unit tests.
test: docker-engine test-unit test-integration ## unit tests, then the suites that start containers (needs Docker)

test-unit: ## the tests that need no Docker (SQLite, in-process Kafka-protocol broker, httptest)
	$(GO) test -race -count=1 $(PKGS_UNIT)

test-integration: docker-engine test-images-if-offline ## the tests that start MySQL, PostgreSQL, RabbitMQ, Redis and Kafka containers (needs Docker)
	$(GO) test -race -count=1 $(DOCKER_PKGS)

docker-engine: ## make sure a Docker engine answers (any: Desktop, Colima, rootless, Podman; starts dockerd as root on Debian)
	@test/images/ensure-docker.sh

test-images: docker-engine ## build the local test images (Linux with debootstrap; idempotent; nothing is pulled)
	test/images/build.sh

# The local stand-ins, when the suites will need them: TEST_IMAGES=local, or
# auto with no registry answering.
test-images-if-offline: docker-engine
	@case "$(TEST_IMAGES)" in \
	local) test/images/build.sh ;; \
	auto) if test/images/registry.sh; then echo "registry answers: upstream test images"; else test/images/build.sh; fi ;; \
	esac

# golangci-lint v2 with .golangci.yml, built once from the module proxy at
# the pinned version into bin/ (no global install; a new version gets a new
# directory). Its analysis cache is golangci-lint's own (~/.cache/golangci-lint,
# or GOLANGCI_LINT_CACHE), so reruns only analyse what changed.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := bin/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
lint: $(GOLANGCI_LINT) ## gofmt, go vet (with the wireinject tag), a stale wire_gen.go check, then golangci-lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags wireinject ./cmd/usersvc
	$(WIRE) diff ./cmd/usersvc
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	GOBIN=$(abspath $(dir $@)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

golangci-lint: $(GOLANGCI_LINT) ## golangci-lint v2 alone, with .golangci.yml (errcheck, govet, staticcheck, revive, gocritic, gosec, bodyclose, sqlclosecheck, contextcheck, errorlint)
	$(GOLANGCI_LINT) run ./...

generate: ## regenerate cmd/usersvc/wire_gen.go
	$(GO) generate ./...

clean: ## remove build output
	rm -rf bin
