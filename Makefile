# dgan: `make demo` trains the default job, `make test` runs the test suite.
# Both install into .venv first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install demo test test-slow lint format bench clean

install: $(STAMP)

# constraints.txt holds the versions the suite was tested with (see its header).
EXTRAS ?= dev,sweep,tensorboard,notebook

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m dgan.train $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests

bench: $(STAMP)
	$(BIN)/python -m dgan.bench $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
