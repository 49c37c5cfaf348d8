# Benchmarks (issue 7), included from the Makefile.
#   make bench                                  micro-benchmarks, then the load benchmark
#   make bench-load BENCH_USERS=1000000         the load benchmark on a million users
#   make bench-load BENCH_ARGS='-pprof prof'    with CPU and allocation profiles
#   make bench-scale                            p99 at 1,000,000 users against 10,000
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
# bench-scale: the InnoDB buffer pool the two runs use (the million-user
# table and its indexes are about 650 MiB), and extra flags (e.g. -keep).
BENCH_SCALE_POOL  ?= 1GiB
BENCH_SCALE_ARGS  ?=

.PHONY: bench bench-micro bench-load bench-scale

bench: bench-micro bench-load ## micro-benchmarks, then the load benchmark against a raw-database baseline (a few minutes)

bench-micro: ## Go micro-benchmarks of the hot paths (validation, JSON, handler chain, SQLite queries)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCH_TIME) $(BENCH_PKGS)

bench-load: build ## load benchmark (test/load): service vs raw SQL and argon2id, RSS of the built binary, relay, event lag
	@mkdir -p $(dir $(BENCH_OUT))
	$(GO) run ./test/load -users $(BENCH_USERS) -duration $(BENCH_DURATION) \
		-concurrency $(BENCH_CONCURRENCY) -rss-binary $(BIN) -out $(BENCH_OUT) $(BENCH_ARGS)

bench-scale: ## p99 of get, list and filter at 1,000,000 users against 10,000 (two runs, about 3 minutes)
	@mkdir -p $(dir $(BENCH_OUT))
	$(GO) run ./test/load -users 10000 -dbname usersvc_load_10k -workloads get,list,filter -duration 12s \
		-rss-conns 0 -relay-events 0 -lag-rate 0 -innodb-buffer-pool $(BENCH_SCALE_POOL) \
		-out $(basename $(BENCH_OUT))-10k.json $(BENCH_SCALE_ARGS)
	$(GO) run ./test/load -users 1000000 -dbname usersvc_load_1m -workloads get,list,filter -duration 12s \
		-rss-conns 0 -relay-events 0 -lag-rate 0 -innodb-buffer-pool $(BENCH_SCALE_POOL) \
		-compare $(basename $(BENCH_OUT))-10k.json -out $(basename $(BENCH_OUT))-1m.json $(BENCH_SCALE_ARGS)
