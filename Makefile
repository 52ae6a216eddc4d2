VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000

.PHONY: install run test test-unit fuzz lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --ignore-requires-python opa-golib-python-bindings==0.4.4
	touch $@

install: $(VENV)/.installed

run: install
	CARACAL_ADMIN_TOKEN=$${CARACAL_ADMIN_TOKEN:-dev-admin-token-change-me} \
	CARACAL_LOCAL_BOOTSTRAP_ENABLED=$${CARACAL_LOCAL_BOOTSTRAP_ENABLED:-true} \
	$(PY) -m controlplane serve --port $(PORT)

test: install
	$(PY) -m pytest -n 2 --dist loadfile

test-unit: install
	$(PY) -m pytest -n 2 --dist loadfile tests/unit

fuzz: install
	$(PY) tests/fuzz/run_schemathesis.py

lint: install
	$(VENV)/bin/ruff check controlplane tests bench
	$(VENV)/bin/ruff format --check controlplane tests bench
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/pdp.py
	$(PY) bench/audit.py

.PHONY: bench-peer
bench-peer: install
	$(PY) bench/peer.py $(PEER_ARGS)

clean:
	rm -rf $(VENV) .caracal
