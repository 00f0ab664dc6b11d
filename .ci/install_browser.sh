#!/usr/bin/env bash
# Installs headless Chromium and ChromeDriver (the browser tests) from Debian when missing.
set -euo pipefail
packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
bash "$(dirname "$0")/apt_install.sh" "the browser tests' Chromium" ${packages[@]+"${packages[@]}"}
