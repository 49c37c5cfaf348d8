# Benchmarks (issue 7), included from the Makefile.
#   make bench                                  micro-benchmarks, then the load benchmark
#   make bench-load BENCH_USERS=1000000         the load benchmark on a million users
#   make bench-load BENCH_ARGS='-pprof prof'    with CPU and allocation profiles
#   make bench-scale                            10k/100k/1M users on MariaDB and PostgreSQL (issue 18)
# The load benchmark creates (and drops) the database usersvc_load on the
# MariaDB at 127.0.0.1:3306 and starts an in-process Kafka-protocol broker;
# it needs no Docker. See test/load/README.md.

BENCH_PKGS        ?= ./domain ./adapters/httpapi ./adapters/gormstore
BENCH_TIME        ?= 1s
BENCH_USERS       ?= 100000
BENCH_DURATION    ?= 6s
BENCH_CONCURRENCY ?= 32
BENCH_OUT         ?= bin/bench-results.json
BENCH_ARGS        ?=
# bench-scale: the stores and table sizes (the first size is the one the
# others are compared with), the workloads, the InnoDB buffer pool of the
# MySQL runs (a million users with their trigram table are about 2.5 GiB),
# and extra flags (e.g. -keep, which keeps the seeded databases for the next run).
BENCH_SCALE_STORES      ?= mysql postgres
BENCH_SCALE_SIZES       ?= 10000 100000 1000000
BENCH_SCALE_WORKLOADS   ?= get,list,first,deep,filter,search
BENCH_SCALE_DURATION    ?= 6s
BENCH_SCALE_CONCURRENCY ?= 16
BENCH_SCALE_POOL        ?= 3GiB
BENCH_SCALE_ARGS        ?=

.PHONY: bench bench-micro bench-load bench-scale

bench: bench-micro bench-load ## micro-benchmarks, then the load benchmark against a raw-database baseline (a few minutes)

bench-micro: ## Go micro-benchmarks of the hot paths (validation, JSON, handler chain, SQLite queries)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCH_TIME) $(BENCH_PKGS)

bench-load: build ## load benchmark (test/load): service vs raw SQL and argon2id, RSS of the built binary, relay, event lag
	@mkdir -p $(dir $(BENCH_OUT))
	$(GO) run ./test/load -users $(BENCH_USERS) -duration $(BENCH_DURATION) \
		-concurrency $(BENCH_CONCURRENCY) -rss-binary $(BIN) -out $(BENCH_OUT) $(BENCH_ARGS)

bench-scale: ## issue 18's matrix: 10,000, 100,000 and 1,000,000 users on MariaDB and PostgreSQL (cursor pages, search, walk; see test/load/README.md)
	@mkdir -p $(dir $(BENCH_OUT))
	@set -e; for store in $(BENCH_SCALE_STORES); do for users in $(BENCH_SCALE_SIZES); do \
		name=$$(echo $$users | sed 's/000000$$/m/; s/000$$/k/'); \
		base=$$(echo $$(echo $(BENCH_SCALE_SIZES) | cut -d' ' -f1) | sed 's/000000$$/m/; s/000$$/k/'); \
		cmp=""; [ "$$name" = "$$base" ] || cmp="-compare $(basename $(BENCH_OUT))-$$store-$$base.json"; \
		pool=""; [ "$$store" = mysql ] && pool="-innodb-buffer-pool $(BENCH_SCALE_POOL)"; \
		echo "== $$store, $$users users"; \
		$(GO) run ./test/load -store $$store -users $$users -dbname usersvc_scale_$$name -workloads $(BENCH_SCALE_WORKLOADS) -walk -search-scan \
			-duration $(BENCH_SCALE_DURATION) -concurrency $(BENCH_SCALE_CONCURRENCY) -rss-conns 0 -relay-events 0 -lag-rate 0 -timeout 40m $$pool \
			$$cmp -out $(basename $(BENCH_OUT))-$$store-$$name.json $(BENCH_SCALE_ARGS); \
	done; done
