#!/usr/bin/env bash
# Installs what the tests need from Debian when missing: headless Chromium and ChromeDriver (browser
# tests) and the DejaVu and Liberation fonts (the swust style preset draws with them).
set -euo pipefail
packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || packages+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf ] || packages+=(fonts-liberation)
[ ${#packages[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
