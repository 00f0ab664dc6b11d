#!/usr/bin/env bash
# apt_install.sh WHAT PACKAGE...: installs Debian packages (as root, or through sudo), saying what and why.
set -euo pipefail
what=$1
shift
[ $# -eq 0 ] && exit 0
echo "installing $what: $* (Debian packages) ..."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "$@" >/dev/null
