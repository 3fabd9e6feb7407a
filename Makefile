# relink: the two commands of the quick start, and the ones behind them.
#   make run    fetch what is missing, build in release, refresh a working copy of seeds/ twice
#   make test   fetch what is missing (and Chromium, as root), run the whole test suite
# libtorch and the model are fetched once per machine into ${XDG_CACHE_HOME:-~/.cache}/relink
# (override with RELINK_CACHE); set LIBTORCH to use an existing libtorch 2.4.0 instead.

CARGO ?= cargo
DEMO  := target/demo-seeds

.PHONY: run test deps libtorch models browser spark build bench bench-refresh bench-cli bench-serve bench-scale spark-check lint clean-demo

run: deps
	$(CARGO) build --release
	rm -rf $(DEMO) && mkdir -p $(DEMO) && cp seeds/* $(DEMO)/
	@echo "== first run: empty cache =="
	./target/release/relink refresh $(DEMO)
	@echo "== second run: nothing changed =="
	./target/release/relink refresh $(DEMO)
	@echo "== the list written for the original seed article =="
	./target/release/relink related $(DEMO)/000_6487b44b07e2c8c7.txt
	@sed -n '/^related:/,/^secured:/p' $(DEMO)/000_6487b44b07e2c8c7.txt | head -24

# Tests run in release: the model tests embed thousands of texts, and one dependency build
# serves `make run`, `make test` and the benches. Tests that load the model take a lock, so
# parallel test threads never oversubscribe the cores.
# `cargo test` alone does not build the model backend (a shared library of the workspace
# member model/, which relink opens to embed): `cargo build` first.
test: deps browser spark
	@rm -f target/tmp/skipped-tests.txt
	$(CARGO) build --release
	$(CARGO) test --release
	@if [ -s target/tmp/skipped-tests.txt ]; then \
		echo "make test: $$(wc -l < target/tmp/skipped-tests.txt) tests skipped:"; \
		sed 's/^/  /' target/tmp/skipped-tests.txt; \
	else echo "make test: no test skipped"; fi

deps: libtorch models

libtorch:
	@scripts/fetch-deps.sh libtorch

models:
	@scripts/fetch-deps.sh model

# Headless Chromium for the editor's page test: installed as root where apt-get is, else named.
browser:
	@scripts/fetch-deps.sh browser

# Java 17 (Debian, as root) and PySpark (PyPI) for the Spark job and its test.
spark:
	@scripts/fetch-deps.sh spark

# The Spark job in local mode against refresh on one machine: make spark-check CORPUS=DIR
# [WINDOW_BEFORE=30 WINDOW_AFTER=30 MASTER='local[2,4]' KILL=1 JOB_FLAGS='--bucket-days 7']
spark-check: build spark
	scripts/spark-check.sh $(CORPUS)

build: deps
	$(CARGO) build --release

bench: build
	$(CARGO) bench

bench-refresh: build
	scripts/bench-refresh.sh

bench-cli: build
	scripts/bench-cli.sh

bench-serve: build
	@scripts/fetch-deps.sh loadgen
	scripts/bench-serve.sh

# Archive scale with the test embedder: make bench-scale N=100000 [RUNS=3]
N ?= 20000
bench-scale: deps
	RELINK_SCALE_N=$(N) $(CARGO) bench --bench scale

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
