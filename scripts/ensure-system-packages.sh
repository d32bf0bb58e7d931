#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing (Chromium, ffmpeg, espeak-ng, coturn,
# fonts, nftables, softhsm2). Never lets a tool download a browser of its own: Playwright drives /usr/bin/chromium.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
[ -e /usr/share/fonts/truetype/liberation2 ] || need+=(fonts-liberation2)
command -v nft >/dev/null 2>&1 || need+=(nftables)  # packet loss on one media leg (browser tests)
command -v turnserver >/dev/null 2>&1 || need+=(coturn)  # TURN relay tests against a real coturn
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)  # PKCS#11 signing tests (a software token)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
