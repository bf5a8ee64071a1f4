"""The tamper campaign, many times: the CI check of tests/test_faults_tamper.py with 1,000
seeded mutations by default, half of them byte flips of events, hashes, blobs and status
views, half the campaign over every table (journal rows flipped, renumbered or deleted,
blobs and events deleted, status views deleted, run rows flipped). Each must be named by
`skillopt verify` (exit 1, one line) or be one of the mutations undetectable by design
(tests/tamper_kit.py BY_DESIGN); no command may end in a traceback (`status --fold`,
`calls --json` and `report --md` run on every mutated copy). Prints the figures per kind
and the machine; exits 1 on any miss.

Run: python benchmarks/tamper.py [--mutations 1000] [--seed 1312]
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from synthetic import ROOT, machine_line
from typer.testing import CliRunner

from skillopt.commands.cli import app
from tests.conftest import SMALL  # noqa: E402
from tests.tamper_kit import BY_DESIGN, mutate  # noqa: E402
from tests.test_faults_tamper import flip_one_byte  # noqa: E402


def cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        return 99, f"Traceback: {type(res.exception).__name__}: {res.exception}"
    return res.exit_code, res.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mutations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1312)
    args = parser.parse_args()
    print(machine_line())
    started = time.perf_counter()
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    missed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        original, copy = Path(tmp) / "original.db", Path(tmp) / "copy.db"
        example = str(ROOT / "examples" / "sim.yaml")
        assert cli("init", example, "--db", str(original), "--name", "t", *SMALL)[0] == 0
        assert cli("run", "--db", str(original))[0] == 0
        rng = random.Random(args.seed)
        for n in range(args.mutations):
            shutil.copy(original, copy)
            if n % 2 == 0:
                what, _ = flip_one_byte(copy, rng)
                kind = what.split(" ")[0] + " flip"
            else:
                what = mutate(copy, rng)
                kind = " ".join(what.split()[:2])
            code, err = cli("verify", "--db", str(copy))
            lines = err.strip().splitlines()
            tracebacks = [
                c for c in (["status", "--fold"], ["calls", "--json"], ["report", "--md"])
                if "Traceback" in cli(*c, "--db", str(copy))[1]
            ]  # fmt: skip
            if tracebacks or "Traceback" in err:
                outcome = "traceback"
            elif code == 1 and len(lines) == 1 and lines[0].startswith("failed: "):
                outcome = "named"
            elif kind in BY_DESIGN:
                outcome = "by design"
            else:
                outcome = "missed"
            counts[kind][outcome] += 1
            if outcome in ("missed", "traceback"):
                missed.append(f"{what}: exit {code} {err.strip()[:160]} {tracebacks}")
            copy.unlink()
    seconds = time.perf_counter() - started
    print(f"{args.mutations} mutations (seed {args.seed}) in {seconds:.0f} s")
    print(f"{'kind':32} {'named':>6} {'by design':>10} {'missed':>7} {'traceback':>10}")
    for kind in sorted(counts):
        c = counts[kind]
        print(f"{kind:32} {c['named']:6} {c['by design']:10} {c['missed']:7} {c['traceback']:10}")
    total = sum(counts.values(), collections.Counter())
    print(f"{'all':32} {total['named']:6} {total['by design']:10} {total['missed']:7} "
          f"{total['traceback']:10}")  # fmt: skip
    for line in missed[:20]:
        print("MISSED", line)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
