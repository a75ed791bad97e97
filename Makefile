# The two commands a newcomer needs: `make demo` and `make test`. Each sets itself up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DEMO_USER ?= demo-user
DEMO_EXPORT := data/uploads/$(DEMO_USER)/export.zip
export DAGSTER_HOME

.PHONY: install test lint bench eval demo dev defs clean

$(INSTALLED): pyproject.toml soulprint_pipeline/export/_native.c
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "Python 3.11 is needed (found $$($(PYTHON) --version)); set PYTHON=..."; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

install: $(INSTALLED)

test: install
	$(PY) -m pytest soulprint_pipeline_tests

lint: install
	$(VENV)/bin/ruff check soulprint_pipeline soulprint_pipeline_tests benchmarks

bench: install
	$(PY) -m benchmarks.run $(BENCH_ARGS)
	$(PY) -m benchmarks.sensor $(SENSOR_BENCH_ARGS)
	$(PY) -m benchmarks.memory $(MEMORY_BENCH_ARGS)
	$(PY) -m benchmarks.container $(CONTAINER_BENCH_ARGS)
	$(PY) -m benchmarks.scale $(SCALE_BENCH_ARGS)
	$(PY) -m benchmarks.scale --users 4 --export-kb 204800 --imports-only $(SCALE_WORK_BENCH_ARGS)

# Does the soulprint know the person? Planted-persona exports of 2,000 conversations each,
# scored on both paths (offline model, model input); exits 1 under issue 11's targets.
eval: install
	$(PY) -m soulprint_pipeline.testing.eval $(EVAL_ARGS)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

$(DEMO_EXPORT): | $(INSTALLED)
	$(PY) -m soulprint_pipeline.testing.synthetic $(DEMO_EXPORT).partial --size 50MB --format zip --seed 7
	mv $(DEMO_EXPORT).partial $(DEMO_EXPORT)

DEMO_QUERY ?= my dog keeps barking at the mail carrier

# The main job on the embedded defaults: a generated 50 MB export for one demo user, imported
# through the four assets on the local instance (the run shows in `make dev` afterwards), then
# one recall query over the memory it built.
demo: install $(DAGSTER_HOME)/dagster.yaml $(DEMO_EXPORT)
	$(VENV)/bin/soulprint-pipeline import $(DEMO_EXPORT) --user $(DEMO_USER)
	$(VENV)/bin/soulprint-pipeline recall --user $(DEMO_USER) -k 3 "$(DEMO_QUERY)"

# The data folder `make demo` filled (./data unless SOULPRINT_DATA_DIR says otherwise), made
# absolute for `make dev`, which runs elsewhere.
DEV_DATA_DIR := $(abspath $(or $(SOULPRINT_DATA_DIR),data))
# more `dg dev` options, e.g. DEV_ARGS="-p 3001"
DEV_ARGS ?=

# dg runs in the project's virtualenv, as if it were activated. It runs in DAGSTER_HOME, with
# the workspace named: `dagster dev` warns about a dagster.yaml in its working folder that is
# not DAGSTER_HOME's (here, the template copied there), and a dg project's `dg dev` always
# works from the project's root. Its processes (code server, runs) work there too, hence the
# absolute data folder.
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster instance concurrency set llm 2
	$(VENV)/bin/dagster instance concurrency set embeddings 2
	cd $(DAGSTER_HOME) && SOULPRINT_DATA_DIR=$(DEV_DATA_DIR) VIRTUAL_ENV=$(CURDIR)/$(VENV) \
		PATH=$(CURDIR)/$(VENV)/bin:$$PATH dg dev -w $(CURDIR)/workspace.yaml $(DEV_ARGS)

# what the code location defines, and whether it loads (dg list defs / dg check defs)
defs: install
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dg check defs
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dg list defs

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
