# One venv, created on demand; every target below depends on it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= $(CURDIR)/var
PORT   ?= 8000

.PHONY: help install sysdeps demo serve stop notebook test audit fuzz lint bench clean

help:
	@echo "make demo    install, build the demo city and start the sandbox on http://127.0.0.1:$(PORT)"
	@echo "make test    install (system packages too) and run the whole test suite"
	@echo "make bench   benchmarks (not part of the tests)"
	@echo "make audit   the thorough empirical privacy audit (minutes; a fast one is part of make test)"
	@echo "make fuzz    a long fuzzing campaign of compiler and engine (over an hour; 5,000 queries are part of make test)"
	@echo "make stop    stop a sandbox started by 'make demo'"
	@echo "make notebook  Jupyter on notebooks/ for the demo developer (run 'make demo' in another terminal first)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# PostgreSQL is needed by the test suite (a real server, started by the tests themselves),
# Debian's Chromium by the console's browser tests (Playwright drives it; it never downloads one),
# and a Java 17 runtime by the Spark backend's tests (pyspark's own Spark Connect server).
sysdeps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)
	@test -x /usr/bin/chromium || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@command -v java >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null)

demo: install
	$(VENV)/bin/sandbox demo --data-dir $(DATA) --port $(PORT)

serve: install
	$(VENV)/bin/sandbox serve --data-dir $(DATA) --port $(PORT)

# Jupyter (loopback only) on notebooks/, kernels configured with the demo tokens of $(DATA).
notebook: install
	$(VENV)/bin/sandbox notebook --data-dir $(DATA) --url http://127.0.0.1:$(PORT) --staff-tokens

stop:
	@pkill -f "sandbox (demo|serve)" && echo "sandbox stopped" || echo "no sandbox running"

test: install sysdeps
	$(PY) -m pytest -m "not slow and not audit" $(PYTEST_ARGS)

# Many releases per mechanism on neighbouring datasets -> a statistical lower bound on epsilon;
# numbers in tests/output/privacy-audit.txt.
audit: install
	$(PY) -m pytest -m audit tests/privacy_audit $(PYTEST_ARGS)

# Property-based fuzzing (tests/fuzz): two shards in parallel, one per core, each with its own
# random seed; figures in tests/output/fuzz-1.txt and fuzz-2.txt.
FUZZ_EXAMPLES ?= 65000
FUZZ_MIN_ACCEPTED ?= 50000
FUZZ_NEIGHBOURS ?= 1
fuzz: install
	@mkdir -p tests/output; \
	for shard in 1 2; do \
	  FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_MIN_ACCEPTED=$(FUZZ_MIN_ACCEPTED) FUZZ_NEIGHBOURS=$(FUZZ_NEIGHBOURS) FUZZ_REPORT=tests/output/fuzz-$$shard.txt \
	    $(PY) -m pytest -m fuzz tests/fuzz -p no:cacheprovider -q --timeout=0 -k "generated or campaign" $(PYTEST_ARGS) & \
	  pids="$$pids $$!"; \
	done; status=0; for pid in $$pids; do wait $$pid || status=1; done; \
	cat tests/output/fuzz-1.txt tests/output/fuzz-2.txt; exit $$status

lint: install
	$(VENV)/bin/ruff check sandbox connectors tests benchmarks

bench: install sysdeps
	$(PY) -m benchmarks.run
	$(PY) -m pytest -m slow tests/backends -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
