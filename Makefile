# One venv, created on demand; every target below depends on it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= $(CURDIR)/var
PORT   ?= 8000

.PHONY: help install install-test sysdeps demo serve stop notebook test audit fuzz lint bench i18n clean

help:
	@echo "make demo      install (runtime only), build the demo city, serve http://127.0.0.1:$(PORT)"
	@echo "               PORT=8001 to use another port, DATA=dir for another data directory (default var/)"
	@echo "make stop      stop the sandbox that 'make demo' started (its PID file in DATA)"
	@echo "make notebook  JupyterLab on notebooks/ for the demo developer ('make demo' running in another terminal)"
	@echo "make test      install (test tools and system packages too) and run the whole test suite"
	@echo "make bench     benchmarks (not part of the tests)"
	@echo "make audit     the thorough empirical privacy audit (minutes; a fast one is part of make test)"
	@echo "make fuzz      a long fuzzing campaign of compiler and engine (over an hour; 2,000 queries are part of make test)"
	@echo "make i18n      extract the translatable messages, update and compile the zh_CN catalog"

# Runtime dependencies only: what `make demo` and `make notebook` need. pip >= 21.3 (any Python
# >= 3.11 venv has one) installs a pyproject project in editable mode, so pip is not upgraded.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	touch $@

# The test tools on top (pytest, playwright, schemathesis, scipy, ruff, ...).
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# PostgreSQL is needed by the test suite (a real server, started by the tests themselves),
# Debian's Chromium by the console's browser tests (Playwright drives it; it never downloads one),
# with a Chinese font so that its screenshots of the zh-CN console are legible, and a Java 17
# runtime by the Spark backend's tests (pyspark's own Spark Connect server).
sysdeps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)
	@test -x /usr/bin/chromium || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null)
	@command -v java >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null)

demo: install
	$(VENV)/bin/sandbox demo --data-dir $(DATA) --port $(PORT)

serve: install
	$(VENV)/bin/sandbox serve --data-dir $(DATA) --port $(PORT)

# Jupyter (loopback only) on notebooks/, kernels configured with the demo tokens of $(DATA).
notebook: install
	$(VENV)/bin/sandbox notebook --data-dir $(DATA) --url http://127.0.0.1:$(PORT) --staff-tokens

# Exactly the process `make demo` (or `make serve`) started for $(DATA): its PID file says which.
stop:
	@if [ -x $(VENV)/bin/sandbox ]; then $(VENV)/bin/sandbox stop --data-dir $(DATA); \
	 else echo "no sandbox running ($(VENV) does not exist)"; fi

test: install-test sysdeps
	$(PY) -m pytest -m "not slow and not audit" $(PYTEST_ARGS)

# Many releases per mechanism on neighbouring datasets -> a statistical lower bound on epsilon;
# numbers in tests/output/privacy-audit.txt.
audit: install-test
	$(PY) -m pytest -m audit tests/privacy_audit $(PYTEST_ARGS)

# Property-based fuzzing (tests/fuzz): two shards in parallel, one per core, each with its own
# random seed; figures in tests/output/fuzz-1.txt and fuzz-2.txt.
FUZZ_EXAMPLES ?= 65000
FUZZ_MIN_ACCEPTED ?= 50000
FUZZ_NEIGHBOURS ?= 1
fuzz: install-test
	@mkdir -p tests/output; \
	for shard in 1 2; do \
	  FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_MIN_ACCEPTED=$(FUZZ_MIN_ACCEPTED) FUZZ_NEIGHBOURS=$(FUZZ_NEIGHBOURS) FUZZ_REPORT=tests/output/fuzz-$$shard.txt \
	    $(PY) -m pytest -m fuzz tests/fuzz -p no:cacheprovider -q --timeout=0 -k "generated or campaign" $(PYTEST_ARGS) & \
	  pids="$$pids $$!"; \
	done; status=0; for pid in $$pids; do wait $$pid || status=1; done; \
	cat tests/output/fuzz-1.txt tests/output/fuzz-2.txt; exit $$status

lint: install-test
	$(VENV)/bin/ruff check sandbox connectors tests benchmarks

bench: install-test sysdeps
	$(PY) -m benchmarks.run
	$(PY) -m pytest -m slow tests/backends -q $(PYTEST_ARGS)

# The zh_CN catalog: extract every message (Python and templates; mapping in pyproject.toml) into
# build/sandbox.pot, merge it into the .po (new messages arrive untranslated: translate them there),
# and compile the .mo that is committed next to it. tests/test_i18n.py fails on an untranslated
# message or a stale .mo.
i18n: install
	@mkdir -p build
	$(VENV)/bin/pybabel extract -F pyproject.toml -o build/sandbox.pot --project xm-sandbox --no-wrap sandbox
	$(VENV)/bin/pybabel update -i build/sandbox.pot -d sandbox/locale -D sandbox --no-wrap --no-fuzzy-matching \
	  --ignore-obsolete
	$(VENV)/bin/pybabel compile -d sandbox/locale -D sandbox --statistics

clean:
	rm -rf $(VENV) var .pytest_cache
