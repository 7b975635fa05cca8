# Two commands on a fresh machine: `make test` and `make report`. Each bootstraps .venv itself.
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
# Where pip gets torch. Empty: PyPI, whose Linux wheel of torch 2.13.0 is the CUDA build (~530 MB plus the CUDA
# libraries). CPU-only machines: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (PyTorch's CPU wheels).
TORCH_INDEX_URL ?=
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
	$(PIP_INSTALL) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),) "torch==$(TORCH_VERSION)"
	$(PIP_INSTALL) -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP_INSTALL) -e ".[dev]"
	touch $(DEV_STAMP)

test: $(DEV_STAMP)
	$(PY) -m pytest tests -q --ignore=tests/benchmarks -p no:cacheprovider
	$(PY) -m pytest --nbval-lax vaelib/notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg -q -p no:cacheprovider

report: $(STAMP)
	$(VENV)/bin/vaelib-report --preset $(PRESET) --latent-dims $(LATENT_DIMS) --seeds $(SEEDS) --data $(DATA) --out $(OUT) $(if $(N_EXAMPLES),--n-examples $(N_EXAMPLES),) $(if $(EPOCHS),--epochs $(EPOCHS),) $(if $(FORCE),--force,) $(if $(CC),--cc $(CC),)

# Refresh the committed results/reference/$(PRESET) from a finished `make report` in $(OUT), in the same layout so
# the index's links hold: Table 1, figures, every notebook's HTML (with the shared theme CSS), each run's
# config/metrics/run record, figures and audio clips (Ogg Vorbis). Left out: checkpoints, token shards, .ipynb files
# and the listening pack's WAVs. The index is rewritten to link only what was copied, then checked (links resolve,
# audio decodes, no absolute path).
REF := results/reference/$(PRESET)
reference: $(STAMP)
	test -f $(OUT)/index.html
	rm -rf $(REF) && mkdir -p $(REF)/notebooks $(REF)/data
	cp $(OUT)/data/report.json $(REF)/data/
	test ! -d $(OUT)/figures || cp -r $(OUT)/figures $(REF)/figures
	cp $(OUT)/pipeline.json $(OUT)/run_record.json $(OUT)/table1* $(REF)/
	cp $(OUT)/notebooks/*.html $(OUT)/notebooks/*.css $(REF)/notebooks/
	for r in $(OUT)/z*/; do n=$$(basename $$r); mkdir -p $(REF)/$$n; \
	  for f in config.json metrics.json run.json; do test ! -f $$r/$$f || cp $$r/$$f $(REF)/$$n/; done; \
	  for d in figures audio; do test ! -d $$r/$$d || cp -r $$r/$$d $(REF)/$$n/; done; done
	$(VENV)/bin/vaelib-report-index $(REF) --check
	du -sh $(REF)

bench: $(DEV_STAMP)
	$(PY) -m pytest tests/benchmarks -q -s -p no:cacheprovider

bench-gpu: $(DEV_STAMP)
	$(PY) -m tests.benchmarks.gpu

clean-venv:
	rm -rf $(VENV)
