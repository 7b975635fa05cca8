# Two commands on a fresh machine: `make test` and `make report`. Each bootstraps .venv itself.
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp

PRESET ?= small
LATENT_DIMS ?= 128 256 384 512
SEEDS ?= 0
DATA ?= synthetic
OUT ?= results/$(PRESET)
N_EXAMPLES ?=
FORCE ?=

.PHONY: venv test report bench bench-gpu clean-venv

venv: $(STAMP)

# The stamp depends on pyproject.toml, so a changed dependency list rebuilds the environment.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests -q --ignore=tests/benchmarks -p no:cacheprovider
	$(PY) -m pytest --nbval-lax notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg -q -p no:cacheprovider

report: $(STAMP)
	$(PY) -m vaelib.pipeline --preset $(PRESET) --latent-dims $(LATENT_DIMS) --seeds $(SEEDS) --data $(DATA) --out $(OUT) $(if $(N_EXAMPLES),--n-examples $(N_EXAMPLES),) $(if $(FORCE),--force,)

bench: $(STAMP)
	$(PY) -m pytest tests/benchmarks -q -s -p no:cacheprovider

bench-gpu: $(STAMP)
	$(PY) -m tests.benchmarks.gpu

clean-venv:
	rm -rf $(VENV)
