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

.PHONY: report test lab install docs notebooks screenshot bench clean

# Create the virtual environment once; reinstall when the dependency list changes.
$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (install Python 3.11 or run make PYTHON=python3)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH)'
	$(PY) -m pip install -q -e '.[dev,lens]'
	# transformer-lens pulls in wandb, whose console script is also called `wb`: install ours last.
	$(PY) -m pip install -q --no-deps --force-reinstall -e .
	@touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(WB) run icl-gd --preset quick --seeds $(QUICK_SEEDS) --vmap --out $(RUNS)
	$(WB) run rasp-compile --preset quick --out $(RUNS)
	$(WB) report --runs $(RUNS)

test: $(STAMP)
	$(PY) -m pytest -q

docs: $(STAMP)
	$(WB) report --runs $(RUNS)

lab: $(STAMP)
	$(PY) -m jupytext --sync notebooks/*.py >/dev/null 2>&1 || true
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/

bench: $(STAMP)
	$(WB) bench kernels

# Headless Chromium screenshot of the icl-gd page (installs Debian's chromium if missing).
screenshot: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	$(PY) -m http.server 8765 --bind 127.0.0.1 --directory site >/dev/null 2>&1 & echo $$! > .server.pid; sleep 1; \
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
	  --disable-component-update --disable-sync --user-data-dir=$$(mktemp -d) --window-size=1200,3000 \
	  --virtual-time-budget=8000 --screenshot=site-icl-gd.png http://127.0.0.1:8765/results/icl-gd/ ; \
	kill $$(cat .server.pid); rm -f .server.pid; echo "wrote site-icl-gd.png"

clean:
	rm -rf site build *.egg-info
