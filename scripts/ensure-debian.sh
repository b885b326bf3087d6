#!/usr/bin/env bash
# Makes sure a tool the tests drive is here, installing Debian's packages when it is absent:
#   ensure-debian.sh "<commands that must exist>" "<packages that provide them>"
# (headless Chromium and its WebDriver for the checkout page's browser test; nginx for the test
# behind a real reverse proxy). Fails loudly otherwise: no test is ever skipped in silence.
set -euo pipefail

commands=$1
packages=$2
missing=0
for c in $commands; do command -v "$c" >/dev/null || missing=1; done
if [ "$missing" -eq 0 ]; then exit 0; fi

echo "ensure-debian: installing $packages from Debian's packages" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq $packages >/dev/null
for c in $commands; do command -v "$c" >/dev/null || { echo "ensure-debian: $c still missing" >&2; exit 1; }; done
