# One venv, created on demand; every target below depends on it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= $(CURDIR)/var
PORT   ?= 8000

.PHONY: help install sysdeps demo serve stop test lint bench clean

help:
	@echo "make demo    install, build the demo city and start the sandbox on http://127.0.0.1:$(PORT)"
	@echo "make test    install (system packages too) and run the whole test suite"
	@echo "make bench   benchmarks (not part of the tests)"
	@echo "make stop    stop a sandbox started by 'make demo'"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# PostgreSQL is needed by the test suite (a real server, started by the tests themselves).
sysdeps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)

demo: install
	$(VENV)/bin/sandbox demo --data-dir $(DATA) --port $(PORT)

serve: install
	$(VENV)/bin/sandbox serve --data-dir $(DATA) --port $(PORT)

stop:
	@pkill -f "sandbox (demo|serve)" && echo "sandbox stopped" || echo "no sandbox running"

test: install sysdeps
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check sandbox connectors tests benchmarks

bench: install
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) var .pytest_cache
