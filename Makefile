# usersvc — build, run and test. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
# Go 1.26.8's standard library has known vulnerabilities (make vulncheck);
# 1.27.3 fixes them. The go command fetches it once through the module proxy.
# Set here because a go.env with GOTOOLCHAIN=local (as on our machines)
# ignores go.mod's toolchain line. The same version is named in go.mod,
# .ci/run, test/images/build.sh and deploy/Dockerfile. Override with
# `make test GOTOOLCHAIN=local` to run on the installed Go.
export GOTOOLCHAIN ?= go1.27.3
BIN      ?= bin/usersvc
WIRE     := $(GO) tool wire
# Suites that start containers; everything else runs without Docker.
DOCKER_PKGS := $(foreach d,containers integration e2e faults tlsconn,$(if $(wildcard test/$(d)),./test/$(d)/...))
PKGS_UNIT    = $(shell $(GO) list ./... | grep -vE '/test/(containers|integration|e2e|faults|tlsconn)(/|$$)')

# Images for the container suites: upstream (mysql:8.4, apache/kafka:3.9.0,
# postgres:16)
# where Docker Hub resolves, otherwise the local stand-ins that
# `make test-images` builds (machines without a registry). Force with
# `make test TEST_IMAGES=upstream|local`.
TEST_IMAGES ?= $(shell getent hosts registry-1.docker.io >/dev/null 2>&1 && echo upstream || echo local)
ifeq ($(TEST_IMAGES),local)
export USERS_TEST_MYSQL_IMAGE ?= usersvc-test/mariadb:10.11
export USERS_TEST_KAFKA_IMAGE ?= usersvc-test/kfake:dev
export USERS_TEST_POSTGRES_IMAGE ?= usersvc-test/postgres:15
endif

# Development profile for `make run`: SQLite file, events to stdout, loopback
# located in Switzerland, no authentication (the binary's default is
# AUTH_MODE=jwt, which needs an OAuth2 server). Override any of them on the
# command line. EVENT_BUS=log is explicit: the binary's default bus is Kafka
# and refuses to start without KAFKA_BROKERS.
export EVENT_BUS    ?= log
export GEO_PROVIDER ?= static
export GEO_STATIC   ?= 127.0.0.0/8=CH,::1/128=CH
export LOG_FORMAT   ?= text
export AUTH_MODE    ?= none

# Further targets (benchmarks, reliability runs) live in mk/*.mk.
include $(wildcard mk/*.mk)

.PHONY: help build run test test-unit test-integration test-images docker-engine lint generate clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build the binary into bin/usersvc
	$(GO) build -trimpath -o $(BIN) ./cmd/usersvc

run: build ## build and serve on the embedded defaults (SQLite file, events on stdout, loopback = CH)
	$(BIN) serve

test: test-unit test-integration ## unit tests, then the Testcontainers suites (needs Docker)

test-unit: ## unit and adapter tests, no Docker needed (uses the local MariaDB, PostgreSQL and RabbitMQ)
	$(GO) test -race -count=1 $(PKGS_UNIT)

test-integration: docker-engine $(if $(filter local,$(TEST_IMAGES)),test-images) ## the Testcontainers suites (needs a Docker engine)
	$(GO) test -race -count=1 $(DOCKER_PKGS)

docker-engine: ## make sure a Docker engine answers (installs docker.io and starts dockerd as root when missing)
	test/images/ensure-docker.sh

test-images: docker-engine ## build the local test images (idempotent; nothing is pulled)
	test/images/build.sh

lint: ## gofmt, go vet (with the wireinject tag) and a stale wire_gen.go check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags wireinject ./cmd/usersvc
	$(WIRE) diff ./cmd/usersvc

generate: ## regenerate cmd/usersvc/wire_gen.go
	$(GO) generate ./...

clean: ## remove build output
	rm -rf bin
