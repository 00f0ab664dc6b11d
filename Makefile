# captcha-ocr: two commands on a fresh machine.
#   make demo   creates .venv, generates a small data set, trains, evaluates, predicts
#   make test   creates .venv and runs the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast venv fonts visdom browser clean bench-ddddocr site smoke

venv: $(STAMP)

# The packages (requirements.txt) and the font families the styles draw with, in one step.
$(STAMP): requirements.txt build-constraints.txt pyproject.toml .ci/install_fonts.sh
	@echo "creating $(VENV) and installing the Python packages of requirements.txt (PyTorch for the CPU, about 200 MB: 1-3 minutes) ..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/build-constraints.txt $(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .   # the captcha-ocr command
	@bash .ci/install_fonts.sh || echo "warning: the styles' fonts could not be installed (make fonts says why); the default style needs none"
	touch $(STAMP)
	@echo "installed: run the scripts with $(PY), or after: source $(VENV)/bin/activate"

# The font families (Debian packages, found by fontconfig) that the style presets name.
fonts:
	bash .ci/install_fonts.sh

# Headless Chromium and its driver (Debian packages) for the browser tests, and the fonts.
browser: fonts
	bash .ci/install_browser.sh

test: venv browser
	$(PY) -m pytest -q tests

# The tests that train no model and drive no browser (those marked slow are left out): under a minute.
test-fast: venv browser
	$(PY) -m pytest -q -m "not slow" tests

# A small end-to-end run of fixed work (epochs, not minutes: a busy machine takes longer, not worse):
# 7 minutes on 2 idle CPU cores (6.2 of them training), its model 0.80 case-insensitive on its own test.
DEMO_TRAIN := 50000
DEMO_TEST := 2000
DEMO_EPOCHS := 14
# A model reading less of its own test set did not learn (a starved run): the demo ends with an error that says so.
DEMO_MIN_ACCURACY := 0.5
demo: venv
	$(PY) generate_captcha.py --train_count=$(DEMO_TRAIN) --test_count=$(DEMO_TEST)
	@echo "preview grid of the generated captchas: data/captcha/preview.png"
	$(PY) main.py --epochs=$(DEMO_EPOCHS) --model_dir=model
	$(PY) userTest.py --golden_dir=data/captcha/test --model_dir=model --min_accuracy=$(DEMO_MIN_ACCURACY)
	$(PY) userPred.py $$(ls data/captcha/test | head -n 3 | sed 's|^|data/captcha/test/|')
	$(PY) export_onnx.py --model_dir=model
	$(PY) userPred.py --backend=onnx $$(ls data/captcha/test | head -n 3 | sed 's|^|data/captcha/test/|')
	@echo
	@echo "Dashboard: make visdom, then train again: training prints the page of its live plots"
	@echo "  (http://localhost:8097/env/captcha_model for --model_dir=model)"
	@echo "Train it 5 minutes longer: $(PY) main.py --resume --model_dir=model --extend=5"
	@echo "Serve: $(PY) api_demo.py   (production: $(PY) api_demo.py --server=waitress)"

# A site's unlabelled captchas to a model that reads them: fit a style, generate, train, self-train, list
# the captchas to label first (site_model.py; Ctrl-C, then the same command, goes on where it stopped).
# ARGS: more of site_model.py's settings, e.g. ARGS="--site_minutes=30".
site: venv
	@test -n "$(SITE)" -a -n "$(CHARSET)" -a -n "$(LENGTH)" || { echo "usage: make site SITE=folder CHARSET=chars LENGTH=n"; exit 2; }
	$(PY) site_model.py "$(SITE)" --charset="$(CHARSET)" --captcha_length="$(LENGTH)" $(ARGS)

# Every command block of README.md, in order, on a fresh clone with small sizes (tests/smoke_readme.py).
smoke: venv browser
	$(PY) tests/smoke_readme.py

# visdom server that works offline: installs visdom's page assets from the npm registry, then serves.
visdom: venv
	$(PY) visdom_server.py

# Our exported model inside ddddocr (installed in its own .venv-ddddocr; not a project dependency),
# against ddddocr's own model, on the real swust captchas. Needs runs/real_sim_to_real from
# python bench/bench_real.py.
DATASETS ?= ../shared/datasets
DDDDOCR := .venv-ddddocr/bin/python
$(DDDDOCR):
	$(PYTHON) -m venv .venv-ddddocr
	.venv-ddddocr/bin/pip install --disable-pip-version-check -q ddddocr==1.6.1

bench-ddddocr: venv $(DDDDOCR)
	$(PY) export_onnx.py --checkpoint=runs/real_sim_to_real/last.pt
	$(DDDDOCR) bench/bench_ddddocr.py runs/real_sim_to_real/last.ddddocr.onnx $(DATASETS)/swust_cas/*/

clean:
	rm -rf data model .pytest_cache
