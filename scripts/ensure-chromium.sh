#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver are here for the checkout page's browser test:
# installs Debian's chromium and chromium-driver when either is absent. Fails loudly otherwise:
# the browser test must never be skipped in silence.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi

echo "ensure-chromium: installing chromium and chromium-driver from Debian's packages" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
chromedriver --version
