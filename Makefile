# usersvc — build, run and test. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
BIN      ?= bin/usersvc
WIRE     := $(GO) tool wire
PKGS_UNIT = $(shell $(GO) list ./... | grep -v '/test/')

# Development profile for `make run`: SQLite file, events to stdout, loopback
# located in Switzerland. Override any of them on the command line.
export GEO_PROVIDER ?= static
export GEO_STATIC   ?= 127.0.0.0/8=CH,::1/128=CH
export LOG_FORMAT   ?= text

.PHONY: help build run test test-unit test-integration test-images lint generate clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build the binary into bin/usersvc
	$(GO) build -trimpath -o $(BIN) ./cmd/usersvc

run: build ## build and serve on the embedded defaults (SQLite file, events on stdout, loopback = CH)
	$(BIN) serve

test: test-unit test-integration ## unit tests, then the Testcontainers suites (needs Docker)

test-unit: ## unit and adapter tests, no Docker needed (uses the local MariaDB at 127.0.0.1:3306)
	$(GO) test -race -count=1 $(PKGS_UNIT)

test-integration: ## the Testcontainers suites in test/ (needs a Docker engine)
	$(GO) test -race -count=1 ./test/...

lint: ## gofmt, go vet (with the wireinject tag) and a stale wire_gen.go check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags wireinject ./cmd/usersvc
	$(WIRE) diff ./cmd/usersvc

generate: ## regenerate cmd/usersvc/wire_gen.go
	$(GO) generate ./...

clean: ## remove build output
	rm -rf bin
