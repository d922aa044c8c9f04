# bptd: every target sets up its own virtual environment when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSDEPS := $(VENV)/.system-deps

.PHONY: all venv demo test lint bench dbc clean warm-cache

all: test

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

$(SYSDEPS): tools/system-deps.sh $(wildcard tools/setup.d/*.sh) $(STAMP)
	bash tools/system-deps.sh
	@touch $(SYSDEPS)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/bptd demo

test: $(STAMP) $(SYSDEPS)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check daemon tests bench tools
	$(BIN)/ruff format --check daemon tests bench tools

bench: $(STAMP)
	$(BIN)/python -m bench

dbc: $(STAMP)
	$(BIN)/python tools/gen_dbc.py

warm-cache: $(STAMP)
	$(BIN)/bptd warm-cache

clean:
	rm -rf $(VENV) .venv-iso15118 .pytest_cache build *.egg-info daemon/*.egg-info
