# Reliability and security runs (issue 8), included from the Makefile.
#   make reliability                      hostile corpus (SQLite and a MySQL container), security, faults, short soak
#   make test-faults                      the container fault matrix (broker down 30 s, database restart, races on MySQL)
#   make fuzz-short FUZZTIME=30s          every fuzz target for FUZZTIME each
#   make soak SOAK_DURATION=5m            the soak for longer
#   make vulncheck                        govulncheck against a database built from golang.org/x/vulndb
# See test/reliability/README.md.

FUZZ_PKGS          ?= ./domain ./adapters/httpapi ./test/reliability/hostile
FUZZTIME           ?= 10s
SOAK_DURATION      ?= 60s
SOAK_FLAGS         ?=
GOVULNCHECK_VERSION ?= v1.9.0
# The vulnerability reports are the golang.org/x/vulndb module (data/osv),
# served by the Go module proxy like any module; indexdb turns them into the
# database format govulncheck reads with -db file://. Pin a pseudo-version
# to reproduce a scan; latest takes the newest reports.
VULNDB_VERSION     ?= latest
VULNDB_DIR         ?= bin/vulndb

.PHONY: reliability test-faults fuzz-short soak vulncheck

reliability: docker-engine test-images-if-offline ## the reliability suites (hostile corpus on SQLite and a MySQL container, security, geolocation and SIGKILL faults, 10 s soak)
	$(GO) test -race -count=1 ./test/reliability/...

test-faults: docker-engine test-images-if-offline ## the container fault matrix (broker down 30 s, database restart under traffic, concurrent writers on MySQL)
	$(GO) test -race -count=1 ./test/faults/...

fuzz-short: ## run every fuzz target of FUZZ_PKGS for FUZZTIME (default 10s) each
	@set -e; for pkg in $(FUZZ_PKGS); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

soak: ## mixed traffic with the relay for SOAK_DURATION (default 60s): events = mutations, flat heap, goroutines back
	USERSVC_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -v -run '^TestSoak$$' -timeout 0 $(SOAK_FLAGS) ./test/reliability/soak

vulncheck: ## govulncheck ./... against a local copy of the Go vulnerability database (no access to vuln.go.dev needed)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	info=$$(cd "$$tmp" && $(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION)); \
	src=$$(printf '%s' "$$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	ver=$$(printf '%s' "$$info" | sed -n 's/^[[:space:]]*"Version": "\(.*\)",$$/\1/p'); \
	echo "vulnerability reports: golang.org/x/vulndb@$$ver, toolchain $$($(GO) env GOVERSION)"; \
	rm -rf $(VULNDB_DIR) && mkdir -p $(VULNDB_DIR); \
	(cd "$$tmp" && $(GO) run golang.org/x/vulndb/cmd/indexdb@$$ver -vulns "$$src/data/osv" -out $(abspath $(VULNDB_DIR))); \
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(abspath $(VULNDB_DIR)) ./...
