# Two commands on a fresh machine: `make test` and `make report`. Each bootstraps .venv itself.
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
DEV_STAMP := $(VENV)/.stamp-dev

PRESET ?= small
LATENT_DIMS ?= 128 256 384 512
SEEDS ?= 0
DATA ?= synthetic
OUT ?= results/$(PRESET)
N_EXAMPLES ?=
EPOCHS ?=
FORCE ?=
# The controllers to model on a MIDI folder: CC=auto, CC=auto:12 or CC=74,71,1,... (empty: the default table).
# make predefines CC as the C compiler and shells may export it, so only a value given on the command line counts.
ifneq ($(origin CC),command line)
CC :=
endif
CC ?=

.PHONY: venv test report reference bench bench-gpu clean-venv

# pip installs without byte-compiling (--no-compile): compiling every module of every wheel took ~57 s of a ~2 min
# venv build, most of it for modules nothing here imports. Each module is compiled instead when it is first imported,
# and cached next to its source, so recipes must be allowed to write bytecode even where the shell sets
# PYTHONDONTWRITEBYTECODE (without the cache every kernel of `make report` would recompile torch on import).
unexport PYTHONDONTWRITEBYTECODE
PIP_INSTALL := $(PY) -m pip install -q --no-compile

venv: $(DEV_STAMP)

# The stamps depend on pyproject.toml, so a changed dependency list rebuilds the environment. `make report` needs
# only the runtime dependencies (the dev extras cost another ~30 s of a fresh `make report`); test and bench add them.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) "torch==$(TORCH_VERSION)"
	$(PIP_INSTALL) -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP_INSTALL) -e ".[dev]"
	touch $(DEV_STAMP)

test: $(DEV_STAMP)
	$(PY) -m pytest tests -q --ignore=tests/benchmarks -p no:cacheprovider
	$(PY) -m pytest --nbval-lax notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg -q -p no:cacheprovider

report: $(STAMP)
	$(PY) -m vaelib.pipeline --preset $(PRESET) --latent-dims $(LATENT_DIMS) --seeds $(SEEDS) --data $(DATA) --out $(OUT) $(if $(N_EXAMPLES),--n-examples $(N_EXAMPLES),) $(if $(EPOCHS),--epochs $(EPOCHS),) $(if $(FORCE),--force,) $(if $(CC),--cc $(CC),)

# Refresh the committed results/reference/$(PRESET) from a finished `make report` in $(OUT): the index, Table 1, key
# figures, each run's config/metrics/run record and the HTML of notebooks 01-03 (04-06 embed audio, ~2 MB each).
REF := results/reference/$(PRESET)
reference:
	test -f $(OUT)/index.html
	rm -rf $(REF) && mkdir -p $(REF)/notebooks $(REF)/runs
	cp $(OUT)/data/report.json $(REF)/data_report.json
	cp -r $(OUT)/figures $(REF)/figures
	cp $(OUT)/index.html $(OUT)/pipeline.json $(OUT)/run_record.json $(OUT)/table1* $(REF)/
	cp $(OUT)/notebooks/01_*.html $(OUT)/notebooks/02_train_z$(firstword $(LATENT_DIMS))*.html $(OUT)/notebooks/03_*.html $(REF)/notebooks/
	for r in $(OUT)/z*/; do n=$$(basename $$r); mkdir -p $(REF)/runs/$$n; cp $$r/config.json $$r/metrics.json $$r/run.json $(REF)/runs/$$n/; done
	for r in $(firstword $(LATENT_DIMS)) $(lastword $(LATENT_DIMS)); do test ! -d $(OUT)/z$$r/figures || cp -r $(OUT)/z$$r/figures $(REF)/runs/z$$r/; done
	du -sh $(REF)

bench: $(DEV_STAMP)
	$(PY) -m pytest tests/benchmarks -q -s -p no:cacheprovider

bench-gpu: $(DEV_STAMP)
	$(PY) -m tests.benchmarks.gpu

clean-venv:
	rm -rf $(VENV)
