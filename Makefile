# One-command entry points. `make reproduce` = install (if needed) + the whole pipeline on
# config/config.yaml + the HTML report. `make test` = the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
CONFIG ?= config/config.yaml
SNAKEMAKE := HF_HUB_OFFLINE=1 $(VENV)/bin/snakemake --cores $(CORES) --configfile $(CONFIG)

.PHONY: install reproduce report test test-fast plan verify lint clean

install: $(VENV)/.installed

$(VENV)/.installed: envs/torch.txt envs/core.txt envs/nodeps.txt envs/test.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -r envs/torch.txt
	$(PY) -m pip install -q -r envs/core.txt
	$(PY) -m pip install -q --no-deps -r envs/nodeps.txt
	$(PY) -m pip install -q -r envs/test.txt
	$(PY) -m pip install -q --no-deps -e . --config-settings editable_mode=compat
	$(PY) -m sinkrepro.envfix
	touch $@

# The plan checks the config first: Snakemake's own --configfile reader names no line on a YAML error.
reproduce: install
	$(VENV)/bin/sinkrepro plan $(CONFIG)
	$(SNAKEMAKE)
	$(SNAKEMAKE) --report paper/report.html --report-stylesheet workflow/report/report.css

plan: install
	$(VENV)/bin/sinkrepro plan $(CONFIG)

# Every image against its manifest, every score row against its image (docs/reliability.md).
verify: install
	$(VENV)/bin/sinkrepro verify --config $(CONFIG)

# Two pytest processes side by side: the paper twin's end-to-end run (tests/test_twin.py, about half
# of the suite's time, one process) and everything else; its output follows the rest's.
test: install
	@log=$$(mktemp); HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=15 tests/test_twin.py > $$log 2>&1 & twin=$$!; \
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=25 --ignore=tests/test_twin.py; rest=$$?; \
	wait $$twin; twin_rc=$$?; echo "--- tests/test_twin.py"; cat $$log; rm -f $$log; \
	exit $$(( rest || twin_rc ))

lint: install
	$(SNAKEMAKE) --lint

clean:
	rm -rf results logs paper/tables paper/figures paper/claims.md paper/report.html paper/report.rst .snakemake

# Share weights and expensive outputs through DVC (docs/sharing.md). REMOTE=name: not the default remote.
.PHONY: push pull touch
SHARING := $(PY) -m sinkrepro.sharing --config $(CONFIG) $(if $(REMOTE),--remote $(REMOTE))

push: install
	$(SHARING) push

pull: install
	$(SHARING) pull

touch: install
	$(SHARING) touch
