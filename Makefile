# The workbench. `make report` and `make test` are the two commands of the README.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
WB     := $(PY) -m workbench.run
STAMP  := $(VENV)/.installed
RUNS   ?= runs
QUICK_SEEDS ?= 0-2
# The CPU build of torch for the TransformerLens extra; a bare `torch` from PyPI is a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: report test lab install docs notebooks screenshot bench browser clean

# Create the virtual environment once; reinstall when the dependency list changes.
$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (install Python 3.11 or run make PYTHON=python3)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH)'
	$(PY) -m pip install -q -e '.[dev,notebooks,docs,lens]'
	# transformer-lens pulls in wandb, whose console script is also called `wb`: install ours last.
	$(PY) -m pip install -q --no-deps --force-reinstall -e .
	@touch $(STAMP)

install: $(STAMP)

# The quick preset of every experiment of the package (complete runs are reused), the notebooks, then the site.
report: $(STAMP)
	$(WB) report --run quick --seeds $(QUICK_SEEDS) --runs $(RUNS)

# The browser test drives Debian's chromium; install it where missing (the test skips, saying why, only
# where it cannot be installed at all).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	    echo "note: could not install chromium + chromium-driver; the browser test will be skipped"; }

test: $(STAMP) browser
	$(PY) -m pytest -q -rs

docs: $(STAMP)
	$(WB) report --runs $(RUNS)

lab: $(STAMP)
	$(PY) -m jupytext --sync notebooks/*.py >/dev/null 2>&1 || true
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/

# Benchmarks as JSON where the report's performance page reads them (RUNS/benchmarks/NAME.json).
BENCHES ?= kernels sampling train
bench: $(STAMP)
	@mkdir -p $(RUNS)/benchmarks
	@for b in $(BENCHES); do echo "wb bench $$b --json"; \
	  $(WB) bench $$b --json > $(RUNS)/benchmarks/.$$b.json.tmp && mv $(RUNS)/benchmarks/.$$b.json.tmp $(RUNS)/benchmarks/$$b.json \
	  || { rm -f $(RUNS)/benchmarks/.$$b.json.tmp; exit 1; }; done
	$(WB) report --runs $(RUNS)

# The browser test on its own, keeping its screenshots (scoreboard, a result page, a theory page) in build/.
screenshot: $(STAMP) browser
	WB_SCREENSHOTS=build/screenshots $(PY) -m pytest -q -rs -s tests/report/test_site.py -k chromium

clean:
	rm -rf site build *.egg-info
