#!/usr/bin/env bash
# Installs what the tests need from Debian when missing: headless Chromium and ChromeDriver (browser
# tests) and the DejaVu, Liberation and Carlito fonts (the swust style presets draw with them).
set -euo pipefail
packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || packages+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf ] || packages+=(fonts-dejavu-extra)
[ -f /usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf ] || packages+=(fonts-liberation)
[ -f /usr/share/fonts/truetype/crosextra/Carlito-Regular.ttf ] || packages+=(fonts-crosextra-carlito)
[ ${#packages[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
