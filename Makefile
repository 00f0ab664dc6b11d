# captcha-ocr: two commands on a fresh machine.
#   make demo   creates .venv, generates a small data set, trains, evaluates, predicts
#   make test   creates .venv and runs the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv visdom browser clean

venv: $(STAMP)

$(STAMP): requirements.txt build-constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/build-constraints.txt $(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

# Headless Chromium and its driver (Debian packages), for the browser tests.
browser:
	bash .ci/install_browser.sh

test: venv browser
	$(PY) -m pytest -q tests

demo: venv
	$(PY) generate_captcha.py --train_count=20000 --test_count=2000
	@echo "preview grid of the generated captchas: data/captcha/preview.png"

# visdom dashboard that works offline: installs visdom's page assets from the npm registry, then serves.
visdom: venv
	$(PY) Visdom.py

clean:
	rm -rf data model .pytest_cache
