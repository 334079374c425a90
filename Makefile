# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates an isolated environment in .venv (once) and installs trustlab into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup browser demo test lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,explain,onnx,sklearn,serve,ray]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/trustlab demo --out runs/demo

# The report's browser test needs Chromium: installed from Debian's packages where it is missing
# and apt can run (as root); elsewhere that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		>/dev/null 2>&1; } || echo "chromium could not be installed: the browser test will be skipped"

test: setup browser
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

clean:
	rm -rf $(VENV) runs .pytest_cache

# Side-by-side benchmarks against peer libraries (never run by CI). `make bench-robustness`
# builds .venv-bench once: trustlab (editable) plus ART, Foolbox, Captum, torchattacks and Quantus,
# all without torchvision and with torch pinned by constraints.txt. Pass options with ARGS, e.g.
# `make bench-robustness ARGS=--quick` (smoke test) or `ARGS="--only pgd40"`.
BENCH_VENV  ?= .venv-bench
BENCH_BIN   := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed
ARGS        ?=

.PHONY: bench-setup bench-robustness bench-explain bench-alarm bench-near-ood bench-backdoor bench-fairness bench-clean

$(BENCH_STAMP): pyproject.toml constraints.txt benchmarks/requirements.txt benchmarks/requirements-nodeps.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip
	$(BENCH_BIN)/python -m pip install --quiet -c constraints.txt -e . -r benchmarks/requirements.txt
	$(BENCH_BIN)/python -m pip install --quiet -c constraints.txt --no-deps -r benchmarks/requirements-nodeps.txt
	touch $(BENCH_STAMP)

bench-setup: $(BENCH_STAMP)

bench-robustness: bench-setup
	$(BENCH_BIN)/python benchmarks/robustness.py $(ARGS)

# Explanation metrics against Quantus (see benchmarks/explain.py), e.g. ARGS="--only metrics".
bench-explain: bench-setup
	$(BENCH_BIN)/python benchmarks/explain.py $(ARGS)

# The alarm benchmark needs no peer library (see its docstring): it runs in the project's .venv.
bench-alarm: setup
	$(BIN)/python benchmarks/alarm.py $(ARGS)

# Near-OOD families, leave-one-family-out choices, combinations and outlier exposure (six trainings;
# ARGS=--no-exposure skips them): benchmarks/near_ood.py, in the project's .venv.
bench-near-ood: setup
	$(BIN)/python benchmarks/near_ood.py $(ARGS)

bench-backdoor: setup
	$(BIN)/python benchmarks/backdoor.py $(ARGS)

# Fairness metrics, reweighing and group thresholds against AIF360 and fairlearn on Adult (see
# benchmarks/fairness.py); needs the reference data (TRUSTLAB_DATA or ../shared/data), no network.
bench-fairness: bench-setup
	$(BENCH_BIN)/python benchmarks/fairness.py $(ARGS)

bench-clean:
	rm -rf $(BENCH_VENV)
