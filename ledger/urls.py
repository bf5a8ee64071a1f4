"""A ledger's `--db` as messages show it: a URL's password masked, never printed or recorded.

Plain string work (no SQLAlchemy), so that commands which print a ledger's location stay fast.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:PASSWORD@host...: SQLAlchemy reads the password up to an '@' (and allows '/',
# '?' and ':' in it); masked up to the last '@', so that no reading of the URL shows a part.
_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.\-]*://[^:/@?#]*):(?P<password>.*)@")
# A password given as a query parameter (?password=..., libpq's sslpassword...).
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|sslpassword|secret|token)=)[^&#]*")


def masked_url(db: str) -> str:
    """`db` with the password of a URL replaced by ***; a path is returned as it is."""
    if "://" not in db:
        return db
    shown = _PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", db, count=1)
    return _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, shown)


def url_secrets(db: str) -> list[str]:
    """The secrets in `db` as they may appear in a driver's message (raw and decoded), longest
    first, for scrub()."""
    if "://" not in db:
        return []
    found: list[str] = []
    if (m := _PASSWORD.match(db)) is not None and m["password"]:
        found.append(m["password"])
    found += [m.group(0).split("=", 1)[1] for m in _QUERY_SECRET.finditer(db)]
    from urllib.parse import unquote

    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, db: str) -> str:
    """`text` (a driver's message, say) with every secret of `db` replaced by ***."""
    for secret in url_secrets(db):
        text = text.replace(secret, MASK)
    return text
