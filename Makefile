# crm-flows: developer and CI entry points. `make help` lists them.
#
# Every target that needs the virtualenv depends on its stamp file, so each one works alone on a
# fresh clone, and the environment is reinstalled whenever pyproject.toml or the lock changes.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
STAMP := $(VENV)/.crm-installed
PY := $(VENV)/bin/python
CRM := $(VENV)/bin/crm
PREFECT := $(VENV)/bin/prefect
# python3.11 where it exists under that name, else python3 (checked to be 3.11 below).
BOOTSTRAP_PYTHON ?= $(shell command -v python3.11 || command -v python3)
PACKAGES := crm_core crm_db crm_cli crm_web tasks flows scripts
PYTEST_ARGS ?= -q -rs
DEMO_CUSTOMERS ?= 20000
# The demo data's fixed business date (crm demo seed's default), so every demo run is the same.
DEMO_AS_OF ?= 2026-11-23

VAR_DIR := $(or $(CRM_VAR_DIR),$(CURDIR)/var)
PREFECT_PORT := $(or $(CRM_PREFECT_PORT),4200)
PREFECT_UI := http://127.0.0.1:$(PREFECT_PORT)
# The `prefect` CLI does not go through crm_core.prefect_env: give it the same offline settings.
PREFECT_ENV := PREFECT_HOME=$(VAR_DIR)/prefect PREFECT_SERVER_ANALYTICS_ENABLED=false \
	DO_NOT_TRACK=1 PREFECT_API_URL=$(or $(PREFECT_API_URL),$(PREFECT_UI)/api)
# The demo's mail goes to the local capture (`crm mail-sink`), which speaks plain SMTP only.
DEMO_ENV := CRM_SMTP_TLS=$(or $(CRM_SMTP_TLS),none)

.PHONY: help install demo stop deploy worker lint test clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv (Python 3.11) and install the locked dependencies with uv

$(STAMP): pyproject.toml requirements.lock
	@if [ -z "$(BOOTSTRAP_PYTHON)" ]; then \
		echo "error: neither python3.11 nor python3 is on PATH; crm-flows needs Python 3.11" >&2; \
		exit 1; fi
	@if ! $(BOOTSTRAP_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
		echo "error: $(BOOTSTRAP_PYTHON) is $$($(BOOTSTRAP_PYTHON) -V 2>&1); crm-flows" \
			"needs 3.11: install it, or run make BOOTSTRAP_PYTHON=/path/to/python3.11" >&2; \
		exit 1; fi
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
		echo "$(VENV) is not a Python 3.11 environment: recreating it"; rm -rf $(VENV); fi
	@test -x $(PY) || { echo "creating $(VENV) with $(BOOTSTRAP_PYTHON)"; \
		$(BOOTSTRAP_PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check 'uv>=0.5'
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock -e .
	@touch $@

demo: $(STAMP) ## migrate, seed demo data if empty, run classification, revisits and delivery
	$(CRM) db upgrade
	@state=$$($(PY) scripts/crm_db_state.py) || exit 1; \
	if [ "$$state" = empty ]; then \
		echo "database is empty: seeding $(DEMO_CUSTOMERS) demo customers as of $(DEMO_AS_OF)"; \
		$(CRM) demo seed --customers $(DEMO_CUSTOMERS) --as-of $(DEMO_AS_OF) || exit 1; \
	else echo "database already holds $$state: not seeding (make clean starts over)"; fi
	$(DEMO_ENV) $(CRM) mail-sink --background
	$(CRM) server start --port $(PREFECT_PORT)
	$(DEMO_ENV) $(CRM) run healthcheck --as-of $(DEMO_AS_OF)
	$(DEMO_ENV) $(CRM) run classify_customers --as-of $(DEMO_AS_OF)
	$(DEMO_ENV) $(CRM) run revisits --as-of $(DEMO_AS_OF)
	$(DEMO_ENV) $(CRM) run deliver_outbox --as-of $(DEMO_AS_OF)
	@echo
	@echo "Demo done (as of $(DEMO_AS_OF)):"
	@$(PY) scripts/demo_summary.py
	@echo "  Prefect UI           $(PREFECT_UI)  (flow runs, logs, the <flow>-summary artifacts)"
	@echo "  run a flow           $(CRM) run revisits --as-of 2026-11-24 [--dry-run]"
	@echo "  links in the emails  $(CRM) web  (unsubscribe, revisit outcome, care feedback)"
	@echo "  schedules            make deploy, then make worker"
	@echo "  stop servers         make stop   (mail capture keeps running until then)"

stop: ## stop the local Prefect server (and the demo mail capture)
	@if [ -x $(CRM) ]; then $(CRM) server stop; $(CRM) mail-sink --stop || true; fi

deploy: $(STAMP) ## register the deployments of prefect.yaml with the local Prefect server
	$(CRM) server start --port $(PREFECT_PORT)
	@$(PREFECT_ENV) $(PREFECT) work-pool inspect crm >/dev/null 2>&1 \
		|| $(PREFECT_ENV) $(PREFECT) work-pool create crm --type process
	$(PREFECT_ENV) $(PREFECT) --no-prompt deploy --all

worker: $(STAMP) ## run a process worker for the `crm` pool in the foreground (Ctrl-C stops)
	$(PREFECT_ENV) CRM_FLOWS_DIR=$(CURDIR) $(DEMO_ENV) $(PREFECT) worker start --pool crm --limit 4

lint: $(STAMP) ## ruff (lint and format check) and mypy --strict on the packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(PACKAGES)

test: $(STAMP) ## run the test suite (PostgreSQL tests need CRM_TEST_POSTGRES_URL)
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ -z "$$CRM_TEST_POSTGRES_URL" ]; then \
		echo "*** PostgreSQL tests were SKIPPED: CRM_TEST_POSTGRES_URL is not set" \
			"(e.g. postgresql://postgres@127.0.0.1:5432/postgres). CI runs them. ***"; fi; \
	exit $$status

clean: stop ## stop the servers, delete var/ (databases, Prefect home, mail) and caches
	rm -rf $(VAR_DIR) build .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean ## clean, and delete the virtualenv too
	rm -rf $(VENV)
