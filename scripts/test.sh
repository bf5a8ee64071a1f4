#!/usr/bin/env bash
# The whole test suite, from nothing: install skillopt with its test extras into .venv, lint
# (ruff, and the import contracts of ARCHITECTURE.md with import-linter), test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache
.venv/bin/python -m pytest "$@"
