"""`skillopt serve`: a local, read-only web dashboard over a ledger.

pages.py reads the ledger (only reads: runs, events, status views, blobs, the call journal)
and hands what it read to the pure page builders of machine/reports/dashboard.py; app.py maps
URLs to those pages, rendered by Jinja2 templates with autoescaping on (skills, prompts and
model replies are untrusted text); static/ holds the page's CSS and script, served from the
package (no CDN, no network). The web stack (Starlette, uvicorn, Jinja2) is the optional
extra `skillopt[serve]`."""
