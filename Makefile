# make demo   trains the default network on Fashion-MNIST (installs the runtime packages first)
# make test   runs the whole test suite (installs the test dependencies too)
# make test-fast  the inner loop: leaves out big models and every test measured at 2 s or more
# make lint   ruff
# make models prints the model table
# make reproduce re-runs the papers' findings at small scale (docs/reproductions.md)
PY := .venv/bin/python
STAMP := .venv/.installed
DEV_STAMP := .venv/.installed-dev

.PHONY: setup demo test test-fast durations lint models bench bench-quick reproduce reproduce-quick clean

$(STAMP): requirements.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	bash scripts/setup.sh --dev
	touch $(DEV_STAMP)

setup: $(DEV_STAMP)

demo: $(STAMP)
	$(PY) -m trainers.run

# Two workers (the machines have 2 cores); the biggest models share one worker.
test: $(DEV_STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup

# Leaves out the `slow` marker: big models, and the tests tests/durations.json records at >= 2 s.
test-fast: $(DEV_STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not slow"

# The whole suite, recording each test's time in tests/durations.json (what test-fast reads).
durations: $(DEV_STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup --record-durations

lint: $(DEV_STAMP)
	$(PY) -m ruff check .

models: $(STAMP)
	$(PY) -m keras_archs

bench: $(DEV_STAMP)
	$(PY) -m benchmarks.run_all

bench-quick: $(DEV_STAMP)
	$(PY) -m benchmarks.run_all --quick

# Paper findings at small scale (about an hour on 2 cores; finished runs are skipped on a re-run).
reproduce: $(STAMP)
	for m in degradation wrn_dropout transfer precision; do nice -n 10 $(PY) -m reproductions.$$m || exit 1; done

reproduce-quick: $(STAMP)
	for m in degradation wrn_dropout transfer precision; do $(PY) -m reproductions.$$m --quick || exit 1; done

clean:
	rm -rf .venv .pytest_cache .ruff_cache runs
