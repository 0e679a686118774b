# The two commands a newcomer needs: `make up` runs the stack, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PKG_FILES := constraints.txt requirements-dev.txt $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)

.PHONY: venv up test lint typecheck pytest browser constraints clean

venv: $(STAMP)

$(STAMP): $(PKG_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

up: venv
	$(BIN)/python infra/devstack.py

test: venv lint typecheck pytest

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

# Two workers: every system test in order on one of them, the in-process tests on the
# other (`--dist loadgroup`; the group and the order are set by the kit's pytest plugin).
pytest: venv browser
	$(BIN)/pytest -n 2 --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

# The console's browser tests drive Debian's chromium (a browser cannot be downloaded by
# Playwright here) and need CJK fonts to render Chinese; installed when missing.
CHROMIUM  := /usr/bin/chromium
CJK_FONT  := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -e $(CJK_FONT) ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-noto-cjk; \
	fi

# Re-pin every third-party package at the versions currently installed in .venv.
constraints: venv
	( echo "# Exact pins for every install (pip -c). Regenerate: make constraints"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^tollgate' ; echo "hatchling==1.33.0" ) \
	  | sort -u -f > constraints.txt

clean:
	rm -rf $(VENV) .devstack .mypy_cache .ruff_cache .pytest_cache
