#!/usr/bin/env bash
# A Chromium for the dashboard's browser tests (tests/test_serve.py): Playwright drives the
# distribution's browser, so no browser is downloaded (`playwright install` is never run).
#
#   bash scripts/chromium.sh    # print the browser's path; install Debian's `chromium`
#                               # package first when there is none (as root: apt-get)
#
# Only the path goes to stdout; progress and errors go to stderr. With CI=true the browser
# tests fail (never skip) without a browser.
set -euo pipefail

say() { echo "chromium.sh: $*" >&2; }

find_browser() {
    local name
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

install_browser() {
    if [[ $(id -u) != 0 ]]; then
        say "no Chromium found: install one (Debian: sudo apt-get install chromium)"
        exit 1
    fi
    say "installing Chromium from the distribution's packages"
    export DEBIAN_FRONTEND=noninteractive
    local try
    for try in 1 2 3; do  # a mirror's hiccup is not a failed build
        if apt-get update -qq >&2 && apt-get install -y -qq chromium >&2; then
            return 0
        fi
        say "apt-get failed (try $try of 3)"
        sleep $((try * 5))
    done
    return 1
}

if ! find_browser; then
    install_browser || { say "could not install Chromium (apt-get)"; exit 1; }
    find_browser || { say "apt-get installed no chromium command"; exit 1; }
fi
