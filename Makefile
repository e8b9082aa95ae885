# The two commands a newcomer runs: `make demo` and `make test`. Both set up what is missing first.
PY := .venv/bin/python
PYTEST_ARGS ?=
# worker processes for the suite (pytest-xdist; 0 = one process). Each test file runs whole in one worker.
TEST_WORKERS ?= 2

.PHONY: setup setup-browser demo test lint unit integration bench workflows clean

setup:
	bash scripts/bootstrap.sh

setup-browser:
	bash scripts/bootstrap.sh --browser

demo: setup
	$(PY) scripts/run_demo.py

lint: setup
	$(PY) -m ruff check .

test: setup-browser lint
	$(PY) -m pytest tests -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest tests -q -p no:cacheprovider --ignore=tests/integration $(PYTEST_ARGS)

integration: setup-browser
	$(PY) -m pytest tests/integration -q -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

workflows: setup
	$(PY) scripts/make_workflows.py

clean:
	rm -rf .host output .pytest_cache
