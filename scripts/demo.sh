#!/usr/bin/env bash
# The offline demo, from nothing: install skillopt into .venv, then init -> run -> verify -> report
# on the `sim` environment with the deterministic offline model. No network, no API key.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
out=demo-out
rm -rf "$out" && mkdir -p "$out"
db="$out/runs.db"
.venv/bin/skillopt init examples/sim.yaml --db "$db" --name demo
.venv/bin/skillopt run --db "$db" --run demo
.venv/bin/skillopt status --db "$db" --run demo
.venv/bin/skillopt replay --db "$db" --run demo --verify > /dev/null
.venv/bin/skillopt report --db "$db" --run demo --md -o "$out/report.md"
echo
echo "ledger: $db"
echo "report: $out/report.md"
echo "try:    .venv/bin/skillopt events --db $db --type gate.decided"
