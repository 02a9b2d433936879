# geo_neuralop: two commands on a fresh clone, `make demo` and `make test`.
# `install` builds .venv in the order that works without pulling a CUDA torch:
#   1. torch (a CPU build by default; an existing torch in .venv, e.g. a CUDA build, is kept),
#   2. torch-harmonics 0.8.0 compiled against that torch (--no-build-isolation),
#   3. this package with its dev extras (torch is unpinned, so pip keeps the one installed).
# A second run does nothing: the stamp file is newer than pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
TORCH_HARMONICS_SPEC ?= torch-harmonics==0.8.0
EXTRAS ?= dev
STAMP := $(VENV)/.geo_neuralop-installed-$(EXTRAS)
PYTEST_ARGS ?=

.PHONY: install install-bench test test-slow demo lint bench docs docs-quick build clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null \
		&& echo "torch already in $(VENV): $$($(PY) -c 'import torch; print(torch.__version__)')" \
		|| $(PIP) install "$(TORCH_SPEC)"
	@$(PY) -c "import torch_harmonics" 2>/dev/null \
		&& echo "torch-harmonics already in $(VENV)" \
		|| $(PIP) install --no-build-isolation "$(TORCH_HARMONICS_SPEC)"
	$(PIP) install -e ".[$(EXTRAS)]"
	@$(PY) -c "import torch, torch_harmonics, torch_geometric, geo_neuralop; \
		print('installed: torch', torch.__version__, '| torch-harmonics', torch_harmonics.__version__, \
		'| torch-geometric', torch_geometric.__version__)"
	@touch $(STAMP)

install-bench:
	$(MAKE) install EXTRAS=dev,bench

# Quick versions of the peer comparisons (full runs: see benchmarks/README.md).
bench: install-bench
	$(PY) benchmarks/models.py --quick
	$(PY) benchmarks/sphere_ring.py --quick

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/geo-neuralop demo

lint: install
	$(VENV)/bin/ruff check geo_neuralop tests benchmarks examples

# The documentation site (docs/_build/html/index.html), warnings as errors. `docs` runs the
# examples of the gallery (a few minutes each); `docs-quick` shows them without running them.
docs: install
	$(PY) -m sphinx -b html -W --keep-going docs docs/_build/html

docs-quick: install
	$(PY) -m sphinx -b html -W --keep-going -D plot_gallery=0 docs docs/_build/html

# The sdist and the wheel in dist/ (built with the setuptools already in .venv).
build: install
	$(PY) -m build --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache docs/_build \
		docs/auto_examples docs/api/generated
