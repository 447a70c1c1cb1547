# qwqlab: the two set-up commands (`make figures`, `make test`) each build the local
# virtual environment first, so a fresh clone needs nothing but python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A CPU build of torch, chosen on purpose: an unpinned `torch` can pull a multi-GB CUDA
# build. On a GPU machine: `make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"`.
TORCH_SPEC ?= torch==2.13.0
FIGURES ?= figures
PYTEST_ARGS ?=

.PHONY: figures test lab venv clean nano benchmarks

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m ipykernel install --user --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

figures: venv  ## the main job: every notebook headless on qwq-nano, figures + manifest in $(FIGURES)/
	MPLBACKEND=Agg $(PY) -m qwqlab figures --out $(FIGURES)

test: venv  ## the whole test suite, slow tiers included
	$(PY) -m pytest -q $(PYTEST_ARGS)

lab: venv  ## JupyterLab on notebooks/
	$(VENV)/bin/jupyter lab notebooks/

nano: venv  ## retrain qwq-nano from scratch (about 11 min on 2 CPU cores)
	$(PY) -m qwqlab train-nano --out data/models/qwq-nano

benchmarks: venv
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(FIGURES) .pytest_cache
