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

.PHONY: figures book test lint test-kernels test-latest lock lab venv browser sandbox clean nano benchmarks

# The versions come from constraints.txt (exact pins, so a new release cannot break a fresh
# clone between two runs); pyproject.toml keeps ranges for installing qwqlab elsewhere.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	$(PY) -m ipykernel install --user --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

# Rewrite constraints.txt from what .venv holds now (after upgrading something on purpose).
lock: venv
	( sed -n '1,4p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -vi '^torch==' ) > constraints.txt.new
	mv constraints.txt.new constraints.txt

# The suite against the newest releases pyproject.toml allows, in its own venv: to find out
# on purpose whether a new release breaks the lab before re-locking.
test-latest: browser sandbox
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	.venv-latest/bin/python -m pip install -q $(TORCH_SPEC)
	.venv-latest/bin/python -m pip install -q --upgrade -e ".[test]"
	QWQLAB_UNPINNED=1 .venv-latest/bin/python -m pytest -q $(PYTEST_ARGS)

figures: venv  ## the main job: every notebook headless on qwq-nano, figures + manifest in $(FIGURES)/
	MPLBACKEND=Agg $(PY) -m qwqlab figures --out $(FIGURES)

book: venv  ## every notebook run headless (as `make figures`), then a static HTML book in build/book/
	MPLBACKEND=Agg $(PY) -m qwqlab book --figures $(FIGURES) --out build/book

# Debian's Chromium for the browser tests (tests/browser): Playwright drives it, since a test
# tool's own browser download cannot work offline. Installed once when run as root; otherwise
# it says how, and the browser tests skip with that reason.
browser:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests (about 30 s)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Chromium not found: the browser tests will skip. Install it with: sudo apt-get install -y chromium"; \
	fi

# bubblewrap, the isolation layer for model-written code (qwqlab/sandbox.py): installed once
# when run as root; otherwise it says how, the sandbox falls back (and warns it is no security
# boundary) and the tests that need it skip with that reason.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's bubblewrap for the code sandbox"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	else \
		echo "bubblewrap not found: model-written code runs without isolation. Install it with: sudo apt-get install -y bubblewrap"; \
	fi

test: venv browser sandbox  ## the whole test suite, slow tiers included (browser tests too)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The layout-sensitive tests (decoding, log-probs, GRPO, figure hashes) under other CPU kernels
# and thread counts than this machine picks by itself, and a fingerprint of each setting's numbers
# (scripts/kernel_fingerprint.py) compared with the defaults': which settings move which bits.
# Not part of `make test` (it runs the same tests seven times, about 15 min on 2 cores).
KERNEL_TESTS ?= tests/test_decoding.py tests/test_logprobs.py tests/test_grpo.py tests/test_figures.py
KERNEL_SETTINGS ?= ATEN_CPU_CAPABILITY=avx2 ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 \
	QWQLAB_TEST_THREADS=1 QWQLAB_TEST_THREADS=2 MKL_CBWR=COMPATIBLE MKL_CBWR=AVX2
test-kernels: venv
	@mkdir -p build/kernels
	$(PY) scripts/kernel_fingerprint.py --out build/kernels/fp-0-defaults.json
	@i=1; for s in $(KERNEL_SETTINGS); do \
		echo "== $$s"; \
		env $$s $(PY) scripts/kernel_fingerprint.py --out build/kernels/fp-$$i-$$s.json || exit 1; \
		env $$s $(PY) -m pytest -q -p no:cacheprovider $(KERNEL_TESTS) $(PYTEST_ARGS) || exit 1; \
		i=$$((i+1)); \
	done
	$(PY) scripts/kernel_fingerprint.py --compare build/kernels/fp-*.json

lint: venv  ## ruff (errors only: pyflakes and syntax; settings in pyproject.toml)
	$(VENV)/bin/ruff check qwqlab tests scripts benchmarks

lab: venv  ## JupyterLab on notebooks/
	$(VENV)/bin/jupyter lab notebooks/

nano: venv  ## retrain qwq-nano from scratch (about 11 min on 2 CPU cores)
	$(PY) -m qwqlab train-nano --out data/models/qwq-nano

benchmarks: venv
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-latest $(FIGURES) build .pytest_cache
