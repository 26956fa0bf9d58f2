# Kouan: `make demo` and `make test` do all set-up on a fresh Debian 12/13 machine.
PYTHON ?= python3
VENV := .venv
KOUAN := $(VENV)/bin/kouan

.PHONY: setup demo test lint stack-up stack-down clean

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

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy kouan/contract.py kouan/identifiers.py

stack-up: setup
	$(KOUAN) stack up

stack-down:
	$(KOUAN) stack down

clean: stack-down
	rm -rf .kouan
