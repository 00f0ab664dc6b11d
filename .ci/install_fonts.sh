#!/usr/bin/env bash
# Installs from Debian, when missing, fontconfig and the font families the style presets draw with: serif,
# sans, mono and condensed cuts, the metric clones of the common web fonts (Helvetica, Times, Courier,
# Calibri, Cambria) and a handwriting-like one.
set -euo pipefail
packages=()
command -v fc-match >/dev/null 2>&1 || packages+=(fontconfig)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || packages+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf ] || packages+=(fonts-dejavu-extra)
[ -f /usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf ] || packages+=(fonts-liberation)
[ -f /usr/share/fonts/truetype/crosextra/Carlito-Regular.ttf ] || packages+=(fonts-crosextra-carlito)
[ -f /usr/share/fonts/truetype/crosextra/Caladea-Regular.ttf ] || packages+=(fonts-crosextra-caladea)
[ -d /usr/share/fonts/truetype/freefont ] || packages+=(fonts-freefont-ttf)
[ -d /usr/share/fonts/opentype/urw-base35 ] || packages+=(fonts-urw-base35)
[ -d /usr/share/fonts/opentype/comic-neue ] || [ -d /usr/share/fonts/truetype/comic-neue ] || packages+=(fonts-comic-neue)
bash "$(dirname "$0")/apt_install.sh" "the styles' fonts" ${packages[@]+"${packages[@]}"}
