# paywatch: `make run` for the devnet demo, `make test` for the whole suite.
# Both install what they need: anvil (npm, pinned in tools/), and for tests PostgreSQL,
# headless Chromium and nginx (Debian's packages) when absent.

TOOLS := $(CURDIR)/tools
ANVIL := $(TOOLS)/node_modules/.bin/anvil
CARGO ?= cargo
export ANVIL_BIN := $(ANVIL)
export PAYWATCH_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/postgres

.PHONY: run test sim mutants soak bench bench-scale tools pytools postgres chromium nginx contracts lint clean

## Builds paywatch and runs the devnet demo (anvil + contracts + API on :8080).
run: tools
	$(CARGO) run --locked -- devnet --dir .devnet

## Every test, on SQLite and on PostgreSQL, against a real anvil (and headless Chromium).
test: tools pytools postgres chromium nginx
	./scripts/test.sh

## The deterministic simulator of the watcher (tests/sim): SIM_SEEDS seeds (default 10,000),
## SIM_FIRST_SEED to start elsewhere, SIM_SEED to replay one. `make test` runs a short pass.
sim:
	SIM_SEEDS=$${SIM_SEEDS:-10000} $(CARGO) test --release --locked --test sim -- --nocapture

## cargo-mutants over the pure core (crates/core) against its unit tests (installs it when absent).
mutants:
	command -v cargo-mutants >/dev/null || $(CARGO) install --locked cargo-mutants
	$(CARGO) mutants --package paywatch-core --timeout 120

## The soak (tests/it/soak): a random workload with faults, the books audited against the chain.
## SOAK_SECS per backend (default 600), PAYWATCH_SOAK_SEED to replay, SOAK_BACKEND=sqlite|postgres
## for one of them. `make test` runs it too, 45 s per backend.
soak: tools postgres
	SOAK_SECS=$${SOAK_SECS:-600} $(CARGO) test --locked --test it -- --nocapture --test-threads 1 \
		soak::the_books_hold_under_a_random_workload_with_faults_$${SOAK_BACKEND:-}

## Benchmarks (bench binaries, release build); the report goes to stdout.
bench: tools
	$(CARGO) bench --locked --bench sweep_gas
	$(CARGO) bench --locked --bench gasless_gas
	$(CARGO) bench --locked --bench catchup
	$(CARGO) bench --locked --bench rpc_cost
	$(CARGO) bench --locked --bench index_memory

## The scale benchmark (slow: bulk-inserts 1,100,000 orders into PostgreSQL, opens 10,000 streams).
bench-scale: tools postgres
	$(CARGO) bench --locked --bench scale

## anvil and cast (and solc, for `make contracts`) from npm, pinned by tools/package-lock.json.
tools: $(ANVIL)

$(ANVIL): $(TOOLS)/package.json $(TOOLS)/package-lock.json
	npm install --prefix $(TOOLS) --no-audit --no-fund
	$(ANVIL) --version
	touch $(ANVIL)

postgres:
	./scripts/ensure-postgres.sh

chromium:
	./scripts/ensure-debian.sh "chromium chromedriver" "chromium chromium-driver"

nginx:
	./scripts/ensure-debian.sh "nginx" "nginx"

## schemathesis and openapi-spec-validator (PyPI, pinned in tools/requirements.txt).
pytools:
	./scripts/ensure-pytools.sh

## Rebuilds contracts/out/ from contracts/src/ with the npm solc (offline).
contracts: tools
	node contracts/build.mjs

## Formatting, clippy, and no two files of src/ importing each other (scripts/module-cycles.py).
lint:
	python3 scripts/module-cycles.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

clean:
	rm -rf target .devnet
