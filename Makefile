# Ploutos: the two commands of the README.
#   make train   installs what is missing, builds in release mode, trains config/default.ron
#   make test    installs what is missing, runs every test
# `make setup` alone installs libtorch (torch==2.11.0 wheel) and ray (sweeps) into .venv/ (first time only).

SHELL   := /bin/bash
CARGO   ?= cargo
CONFIG  ?= config/default.ron
# Extra arguments for `ploutos train`, e.g. make train ARGS='--set training.total_timesteps=50000'
ARGS    ?=

.PHONY: train test setup build bench sim-test clean-venv

setup:
	@bash scripts/setup-libtorch.sh
	@command -v $(CARGO) >/dev/null || { echo "ploutos: cargo not found; install Rust (rustup) first." >&2; exit 1; }

build: setup
	$(CARGO) build --release

# `cargo run` finds the binary wherever cargo builds (CARGO_TARGET_DIR included).
train: build
	$(CARGO) run --release --quiet -- train --config $(CONFIG) $(ARGS)

test: setup
	$(CARGO) build --no-default-features --lib
	$(CARGO) test
	@bash scripts/python-checks.sh

# The simulation alone, without libtorch: seconds after an edit.
sim-test:
	$(CARGO) test --no-default-features

bench: build
	$(CARGO) bench --no-default-features

clean-venv:
	rm -rf .venv
