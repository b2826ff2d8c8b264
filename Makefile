# make demo   trains the default network on Fashion-MNIST (installs what it needs first)
# make test   runs the whole test suite (installs what it needs first)
# make lint   ruff
# make models prints the model table
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup demo test test-fast lint models bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m trainers.run

# Two workers (the machines have 2 cores); the biggest models share one worker.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .

models: $(STAMP)
	$(PY) -m keras_archs

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf .venv .pytest_cache .ruff_cache runs
