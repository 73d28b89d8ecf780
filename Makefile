# The two commands of the README. Stages call `python`, so the venv goes first on PATH.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: pipeline test test-fast
pipeline:  ## set up .venv, then run every stage that is out of date (dvc repro)
	bin/setup
	dvc repro

test:      ## set up .venv with the test tools, then run all tests (they start and stop MLflow, S3, Chromium)
	bin/setup --dev
	python -m pytest

test-fast: ## the tests that need no service, pipeline run or trained model (docs/testing.md)
	bin/setup --dev
	python -m pytest -m fast
