# The two commands of the README: `make demo` and `make test`. Both install first.
VENV ?= .venv
PYTHON ?= python3
HULEEDU_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/huleedu_test
export HULEEDU_TEST_POSTGRES_URL

.PHONY: install demo test lint ui

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip setuptools wheel
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/huleedu-pipelines demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

ui: install
	DAGSTER_HOME=$(CURDIR)/.huleedu/dagster $(VENV)/bin/dagster dev -w workspace.yaml
