"""Where the migrations live and which revision is their head, read from the files alone: an
open of an up-to-date ledger, and the status fast path, need neither alembic nor SQLAlchemy."""

from __future__ import annotations

import functools
import re
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


@functools.cache
def head_of_files() -> str | None:
    """The head revision as the migration files name it; None when that is not clear-cut."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text("utf-8")
        revision = re.search(r'^revision\s*=\s*"([^"]+)"\s*$', text, re.M)
        parent = re.search(r'^down_revision\s*=\s*(?:None|"([^"]+)")\s*$', text, re.M)
        if revision is None:
            continue  # not a migration (__init__.py)
        if parent is None:
            return None
        revisions.add(revision.group(1))
        parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
