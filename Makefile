# The two commands: `make run` and `make test`. Each creates .venv and
# installs what it needs, so they work on a fresh machine with only Python.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_RUN  := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test

.PHONY: run test bench thrift clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(STAMP_RUN): setup.cfg setup.py | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(STAMP_TEST): setup.cfg setup.py $(STAMP_RUN)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(STAMP_RUN)
	$(VENV)/bin/cyclone cyclone.conf.json

test: $(STAMP_TEST)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP_TEST)
	$(PY) bench/whisper_bench.py

thrift:
	command -v thrift >/dev/null || (apt-get update && apt-get install -y thrift-compiler)
	rm -rf thrift/gen-py.new && mkdir -p thrift/gen-py.new
	thrift --gen py -out thrift/gen-py.new thrift/cyclone_if.thrift
	mkdir -p thrift/gen-py && rm -rf thrift/gen-py/cyclone_if
	mv thrift/gen-py.new/cyclone_if thrift/gen-py/cyclone_if
	rm -rf thrift/gen-py.new
	@echo "generated thrift/gen-py/cyclone_if (import name: cyclone_if)"

clean:
	rm -rf $(VENV) build *.egg-info
