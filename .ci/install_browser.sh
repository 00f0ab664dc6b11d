#!/usr/bin/env bash
# Installs what the tests and the styles need from Debian when missing: headless Chromium and ChromeDriver
# (browser tests), fontconfig and the font families the style presets draw with.
set -euo pipefail
packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || packages+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf ] || packages+=(fonts-dejavu-extra)
[ -f /usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf ] || packages+=(fonts-liberation)
[ -f /usr/share/fonts/truetype/crosextra/Carlito-Regular.ttf ] || packages+=(fonts-crosextra-carlito)
# Font families that styles name (found by fontconfig): serif, sans, mono and condensed cuts, the metric
# clones of the common web fonts (Helvetica, Times, Courier, Calibri, Cambria) and a handwriting-like one.
command -v fc-match >/dev/null 2>&1 || packages+=(fontconfig)
[ -d /usr/share/fonts/truetype/freefont ] || packages+=(fonts-freefont-ttf)
[ -d /usr/share/fonts/opentype/urw-base35 ] || packages+=(fonts-urw-base35)
[ -f /usr/share/fonts/truetype/crosextra/Caladea-Regular.ttf ] || packages+=(fonts-crosextra-caladea)
[ -d /usr/share/fonts/opentype/comic-neue ] || [ -d /usr/share/fonts/truetype/comic-neue ] || packages+=(fonts-comic-neue)
[ ${#packages[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
