# Kouan: `make demo` and `make test` do all set-up on a fresh Debian 12/13 machine.
PYTHON ?= python3
VENV := .venv
KOUAN := $(VENV)/bin/kouan

.PHONY: setup demo test bench lint stack-up stack-down clean

setup: $(VENV)/.installed
	@bash scripts/setup.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,dev]'
	touch $@

demo: setup
	$(KOUAN) demo

test: setup
	$(VENV)/bin/pytest

# Private stack, baselines and Kouan under load; about 5 minutes on 2 cores.
# Pass options in BENCH_ARGS, e.g. `make bench BENCH_ARGS=--with-100m`.
bench: setup
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy kouan/contract.py kouan/identifiers.py

stack-up: setup
	$(KOUAN) stack up

stack-down:
	$(KOUAN) stack down

clean: stack-down
	rm -rf .kouan
