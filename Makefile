# Forewarn: `make demo` runs the main job, `make test` runs the whole suite. Both set everything up.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
FW := $(VENV)/bin/forewarn
PY := $(VENV)/bin/python

.PHONY: help setup setup-python up down status demo test test-unit test-integration test-e2e lint clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Create .venv, install the project and its tools (checkov), fetch Kafka jars, install redis-server, prometheus, alertmanager (idempotent)
	@scripts/setup.sh

setup-python: ## Only the virtual environment (enough for lint and unit tests: no Java, Maven or Kafka)
	@scripts/setup.sh --python-only

up: setup ## Start the local stack (Kafka, Redis, MLflow, Prometheus, Alertmanager) in the background
	@$(FW) stack up

down: ## Stop the local stack (only the processes `up` started)
	@if [ -x $(FW) ]; then $(FW) stack down; fi

status: ## Health, address and PID of each stack component
	@$(FW) stack status

demo: setup ## The main job: stack, simulated plant, trained model, live alerts
	@scripts/demo.sh

test: setup ## The whole suite from a fresh clone: lint, set up, start the stack, test, stop the stack
	@$(MAKE) --no-print-directory lint
	@scripts/test.sh

test-unit: setup-python ## Unit tests only (no I/O, seconds; no Java, Maven or Kafka needed)
	@$(PY) -m pytest tests/unit -q -p no:cacheprovider

test-integration: up ## Integration tests against the real stack
	@$(PY) -m pytest tests/integration -q

test-e2e: up ## End-to-end tests of the whole pipeline
	@$(PY) -m pytest tests/e2e -q

lint: setup-python ## ruff and mypy (src/forewarn and services/); make test runs it first
	@echo "lint: ruff"; $(VENV)/bin/ruff check src services tests scripts
	@echo "lint: mypy"; $(VENV)/bin/mypy

clean: down ## Stop the stack and delete its state (.forewarn)
	rm -rf .forewarn
