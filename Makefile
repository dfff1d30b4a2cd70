# KubePie. The two set-up commands are `make demo` and `make test`; see README.md.
VENV   := .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: demo test check bench deps clean

deps:
	scripts/install-test-deps

demo:
	scripts/run-demo

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

check: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: deps
	@for b in backend fileserver identity router kubernetes; do echo "== benchmarks.$$b"; $(PY) -m benchmarks.$$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
