# The two commands of the README: `make repro` (the main job) and `make test`.
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install data repro test

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

test: install
	pytest -q
