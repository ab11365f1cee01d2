# The two commands of the README: `make repro` (the main job) and `make test`.
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install data repro dose seeds sweeps profile lint test test-slow test-all

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Copy the raw data into data/ and refuse to go on unless it matches data.dvc.
data: install
	deceptionlab data

repro: data
	dvc repro

# The training dose (dose/dvc.yaml): long runs kept apart from the main pipeline; resumable.
dose: data
	dvc repro dose/dvc.yaml

# The training seeds (seeds/dvc.yaml): about 4.3 h on 2 cores, resumable; its header gives parts of under 2 h.
seeds: data
	dvc repro seeds/dvc.yaml

# The named Optuna studies (sweeps/dvc.yaml, params.yaml sweep.studies): resumable.
sweeps: data
	dvc repro sweeps/dvc.yaml

# Another model: a params profile run in a checkout of its own, its reports copied to reports/profiles/
# (scripts/run_profile.sh); e.g. make profile PROFILE=qwen2.5-coder-0.5b, then dvc repro report_claims.
profile: data
	scripts/run_profile.sh $(PROFILE)

# ruff, configured in pyproject.toml ([tool.ruff]).
lint: install
	ruff check .

# The default tier: tiny models built from a config, real MLflow, Optuna, DVC (under 10 min on 2 cores), one
# pytest-xdist worker per core (at most 4), each with its share of torch's threads (tests/conftest.py).
test: install
	pytest -q -m "not slow" -n logical --maxprocesses 4

# The slower tier: the real default model end to end, long tiny-model runs, kill-and-resume runs. CI runs both tiers.
test-slow: install
	pytest -q -m slow

test-all: install
	pytest -q
