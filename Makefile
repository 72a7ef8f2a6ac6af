# One entry point for what CI runs. `make test` is the README's test command.
CARGO ?= cargo

.PHONY: test lint check fmt build release ui bench

test:
	$(CARGO) test --workspace --all-targets --no-fail-fast
	./scripts/test-extra.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check: lint test

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --bin kinsight

bench:
	$(CARGO) bench --workspace
