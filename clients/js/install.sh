#!/bin/sh
# Install the SDK's npm dependencies from the committed lock file and build the SDK (dist/) and
# the demo bundle (demo/app.js). Called by the CI install script; needs node + npm
# (scripts/apt/web.txt). Never downloads a browser: tests use Debian's /usr/bin/chromium.
set -eu
cd "$(dirname "$0")"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund
npm run build
