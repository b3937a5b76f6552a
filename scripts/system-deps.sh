#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real (redis-server and postgresql for
# the scale-out stores, chromium for the studio tests) and the fonts cards are drawn with.
# Idempotent; a no-op when present.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# PostgreSQL (initdb + pg_ctl) for the delivery store on its shared backend (tests start a
# throwaway server of their own; the package's default cluster is not used).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# Kannel (bearerbox + smsbox) for the delivery test through a real SMS gateway.
[ -x /usr/sbin/bearerbox ] || command -v bearerbox >/dev/null 2>&1 || need+=(kannel)
# wrk, the HTTP load generator of the short-link benchmark (bench/shortlink_bench.py).
command -v wrk >/dev/null 2>&1 || need+=(wrk)
# The fault tests (tests/delivery/test_faults.py): nft cuts a worker in a network namespace off
# from one service, faketime runs a worker with its clock apart from the others'.
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v faketime >/dev/null 2>&1 || need+=(faketime)
# cairo (cairosvg: designer SVG card templates) and fontconfig (its text, pointed at assets/fonts).
libs=$(/sbin/ldconfig -p 2>/dev/null || true)
[[ $libs == *"libcairo.so.2 "* ]] || need+=(libcairo2)
[[ $libs == *"libfontconfig.so.1 "* ]] || need+=(libfontconfig1)
# The fonts every picture and video is drawn with (renderer/fonts.py: the fallback chain):
# Noto Sans CJK (GB18030's required set, Traditional), Hanazono (extension A and B), Noto Color
# Emoji and DejaVu Sans, all under open licences. Without them the renderer refuses to draw.
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
[ -f /usr/share/fonts/truetype/hanazono/HanaMinB.ttf ] || need+=(fonts-hanazono)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "system-deps: cannot install ${need[*]} (not root, no sudo); tests needing them will skip" >&2
    exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || true
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "system-deps: apt-get install ${need[*]} failed; dependent tests will skip" >&2
