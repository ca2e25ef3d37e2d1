# crm-flows: developer and CI entry points. `make help` lists them.
#
# Every target that needs the virtualenv depends on its stamp file, so each one works alone on a
# fresh clone, and the environment is reinstalled whenever pyproject.toml or the lock changes.
#
# Two locks, both with hashes (`make lock` writes them): requirements.lock is what a production
# worker runs (`make install-prod`), requirements-dev.lock adds the demo and dev extras (`make
# install`, used by demo, test and lint).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
STAMP := $(VENV)/.crm-installed
PROD_STAMP := $(VENV)/.crm-installed-prod
UV := $(VENV)/bin/uv
# The uv that installs and locks: pinned, so `make lock` writes the same files everywhere.
UV_VERSION := 0.13.9
# Extra `uv pip compile` options for `make lock`, e.g. LOCK_ARGS='--upgrade-package prefect'.
# Without them existing pins are kept (uv prefers the versions already in the output file).
LOCK_ARGS ?=
PY := $(VENV)/bin/python
CRM := $(VENV)/bin/crm
PREFECT := $(VENV)/bin/prefect
# python3.11 where it exists under that name, else python3 (checked to be 3.11 below).
BOOTSTRAP_PYTHON ?= $(shell command -v python3.11 || command -v python3)
PACKAGES := crm_core crm_db crm_cli crm_web tasks flows scripts
PYTEST_ARGS ?= -q -rs
# The suite runs in TEST_WORKERS pytest-xdist processes (each with its own PostgreSQL database and
# Prefect test API), then the kill -9 delivery tests (marker `crash`) alone: they measure how long
# an accepted message waits for its mark, which a loaded machine would stretch. JUNIT_DIR (CI)
# gets one JUnit file per step.
TEST_WORKERS ?= 2
JUNIT_DIR ?=
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
# It speaks for a Chinese company (its customers read zh-CN mail), not for "CRM Flows".
DEMO_COMPANY ?= 西湖能源
DEMO_ENV := CRM_SMTP_TLS=$(or $(CRM_SMTP_TLS),none) CRM_COMPANY_NAME="$(DEMO_COMPANY)" \
	CRM_MAIL_FROM="$(DEMO_COMPANY) <crm@example.test>"

# `make serve`: what the deployments' job variables are filled with (prefect.yaml, `crm ops
# deploy`): the demo's own settings, every one overridable from the shell.
SERVE_ENV := CRM_MODE=$(or $(CRM_MODE),demo) \
	CRM_DATABASE_URL=$(or $(CRM_DATABASE_URL),sqlite:///$(VAR_DIR)/crm.sqlite3) \
	CRM_SMTP_HOST=$(or $(CRM_SMTP_HOST),127.0.0.1) CRM_SMTP_PORT=$(or $(CRM_SMTP_PORT),8025) \
	CRM_SMTP_USER=$(CRM_SMTP_USER) CRM_PUBLIC_BASE_URL=$(or $(CRM_PUBLIC_BASE_URL),http://127.0.0.1:8000) \
	CRM_OPERATOR_EMAILS=$(or $(CRM_OPERATOR_EMAILS),ops@example.test) CRM_VAR_DIR=$(VAR_DIR)
# Starts a command in the background in its own session, its output in var/NAME.log and its pid
# in var/NAME.pid (unless that pid still runs), so `make stop` can end it (and its children).
define background
	@if [ -f $(VAR_DIR)/$(1).pid ] && kill -0 $$(cat $(VAR_DIR)/$(1).pid) 2>/dev/null; then \
		echo "$(1) already running (pid $$(cat $(VAR_DIR)/$(1).pid))"; \
	else \
		setsid $(2) >$(VAR_DIR)/$(1).log 2>&1 < /dev/null & echo $$! > $(VAR_DIR)/$(1).pid; \
		echo "$(1) started (pid $$(cat $(VAR_DIR)/$(1).pid)), log $(VAR_DIR)/$(1).log"; \
	fi
endef

.PHONY: help install install-prod lock demo serve stop deploy worker lint test clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv (Python 3.11); install requirements-dev.lock, hashes checked

install-prod: $(PROD_STAMP) ## .venv for a production worker: requirements.lock only (no test tools)

# Creates the virtualenv (Python 3.11, checked) with the pinned uv in it; every recipe that
# installs or locks starts with it, so a wrong-version .venv is replaced wherever it comes from.
define venv_with_uv
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
	@$(UV) --version 2>/dev/null | grep -q '^uv $(UV_VERSION) ' \
		|| $(PY) -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'
endef

# `uv pip sync` makes the environment exactly the lock (and removes what the lock no longer
# holds); every file's hash must match. The project itself goes in editable and without
# dependencies: a local path has no hash, and its dependencies are all in the lock. Editable
# because the code finds templates/ and var/ beside its packages (crm_core.paths).
$(STAMP): pyproject.toml requirements-dev.lock
	$(venv_with_uv)
	$(UV) pip sync --quiet --python $(PY) --require-hashes requirements-dev.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@rm -f $(PROD_STAMP)
	@touch $@

$(PROD_STAMP): pyproject.toml requirements.lock
	$(venv_with_uv)
	$(UV) pip sync --quiet --python $(PY) --require-hashes requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@rm -f $(STAMP)
	@touch $@

lock: ## re-pin both locks from pyproject.toml with hashes (LOCK_ARGS=--upgrade-package X)
	$(venv_with_uv)
	$(UV) pip compile --quiet pyproject.toml --extra demo --extra dev --universal \
		--generate-hashes $(LOCK_ARGS) -o requirements-dev.lock
	$(UV) pip compile --quiet pyproject.toml --universal --generate-hashes \
		-c requirements-dev.lock -o requirements.lock

demo: $(STAMP) ## migrate, seed demo data if empty, run classification, revisits, surveys, demo answers, surveys again, the survey report and delivery
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
	$(DEMO_ENV) $(CRM) run surveys --as-of $(DEMO_AS_OF)
	$(DEMO_ENV) $(CRM) run deliver_outbox --as-of $(DEMO_AS_OF)
	@# Customers answer a share of the invitations just sent (through the answer page's code);
	@# the second surveys run scores them and raises the detractor loop's alerts and revisits.
	$(CRM) demo answers
	$(DEMO_ENV) $(CRM) run surveys --as-of $(DEMO_AS_OF)
	$(DEMO_ENV) $(CRM) run survey_report --as-of $(DEMO_AS_OF)
	$(DEMO_ENV) $(CRM) run deliver_outbox --as-of $(DEMO_AS_OF)
	@echo
	@echo "Demo done (as of $(DEMO_AS_OF)):"
	@$(PY) scripts/demo_summary.py
	@echo "  Prefect UI           $(PREFECT_UI)  (flow runs, logs, the <flow>-summary artifacts)"
	@echo "  run a flow           $(CRM) run revisits --as-of 2026-11-24 [--dry-run]"
	@echo "                       (it also completes the revisits whose care email the relay accepted)"
	@echo "  links in the emails  $(CRM) web  (unsubscribe, revisit outcome, care feedback)"
	@echo "  schedules            make deploy, then make worker"
	@echo "  stop servers         make stop   (mail capture keeps running until then)"

serve: $(STAMP) ## the console: Prefect server + UI, deployments, a worker, mail capture, crm web
	@mkdir -p $(VAR_DIR)
	$(SERVE_ENV) $(CRM) db upgrade
	@state=$$($(SERVE_ENV) $(PY) scripts/crm_db_state.py) || exit 1; \
	if [ "$$state" = empty ]; then \
		echo "database is empty: seeding $(DEMO_CUSTOMERS) demo customers as of $(DEMO_AS_OF)"; \
		$(SERVE_ENV) $(CRM) demo seed --customers $(DEMO_CUSTOMERS) --as-of $(DEMO_AS_OF) || exit 1; fi
	$(SERVE_ENV) $(DEMO_ENV) $(CRM) mail-sink --background
	$(CRM) server start --port $(PREFECT_PORT)
	$(PREFECT_ENV) $(SERVE_ENV) $(DEMO_ENV) $(CRM) ops deploy
	$(call background,worker,env $(PREFECT_ENV) CRM_FLOWS_DIR=$(CURDIR) $(SERVE_ENV) $(DEMO_ENV) \
		$(PREFECT) worker start --pool crm --limit 4)
	$(call background,web,env $(SERVE_ENV) $(DEMO_ENV) $(CRM) web)
	@echo
	@echo "  Prefect UI (the console)  $(PREFECT_UI)   deployments, runs, logs, artifacts"
	@echo "  links in the emails       $${CRM_PUBLIC_BASE_URL:-http://127.0.0.1:8000}"
	@echo "  captured mail             $(VAR_DIR)/mail/   (crm mail-sink)"
	@echo "  stop everything           make stop"

stop: ## stop what serve/demo started: worker, crm web (by their pids), Prefect server, mail capture
	@for name in worker web; do \
		file=$(VAR_DIR)/$$name.pid; [ -f $$file ] || continue; pid=$$(cat $$file); \
		if kill -TERM -- -$$pid 2>/dev/null; then \
			for _ in $$(seq 30); do kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; \
			kill -KILL -- -$$pid 2>/dev/null && echo "$$name did not stop in 15 s: killed"; \
			echo "$$name stopped (pid $$pid)"; fi; \
		rm -f $$file; done
	@if [ -x $(CRM) ]; then $(CRM) server stop; $(CRM) mail-sink --stop || true; fi

deploy: $(STAMP) ## register prefect.yaml's deployments and the failure alert with the local server
	$(CRM) server start --port $(PREFECT_PORT)
	$(PREFECT_ENV) $(SERVE_ENV) $(DEMO_ENV) $(CRM) ops deploy

worker: $(STAMP) ## run a process worker for the `crm` pool in the foreground (Ctrl-C stops)
	$(PREFECT_ENV) CRM_FLOWS_DIR=$(CURDIR) $(DEMO_ENV) $(PREFECT) worker start --pool crm --limit 4

lint: $(STAMP) ## ruff (lint and format check) and mypy --strict on the packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(PACKAGES)

test: $(STAMP) ## run the test suite (PostgreSQL tests need CRM_TEST_POSTGRES_URL)
	@status=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not crash" $(PYTEST_ARGS) \
		$(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/junit-parallel.xml) || status=$$?; \
	$(PY) -m pytest -m crash $(PYTEST_ARGS) \
		$(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/junit-crash.xml) || { rc=$$?; \
		[ $$rc -eq 5 ] || status=$$rc; }; \
	if [ -z "$$CRM_TEST_POSTGRES_URL" ]; then \
		echo "*** PostgreSQL tests were SKIPPED: CRM_TEST_POSTGRES_URL is not set" \
			"(e.g. postgresql://postgres@127.0.0.1:5432/postgres). CI runs them. ***"; fi; \
	exit $$status

clean: stop ## stop the servers, delete var/ (databases, Prefect home, mail) and caches
	rm -rf $(VAR_DIR) build .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean ## clean, and delete the virtualenv too
	rm -rf $(VENV)
