#!/usr/bin/env bash
# aimeta on Linux/macOS, from a fresh clone:
#   ./run.sh          set up, then read Input/ (or the bundled examples/) into out/images.db
#   ./run.sh test     set up (with Chromium and darktable where it can), then run the whole
#                     test suite (what CI runs)
#   ./run.sh <args>   set up, then run `aimeta <args>`
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=".venv"

say() { printf '%s\n' "$*" >&2; }

# Install WHAT with a package install command ("apt-get install -y ...", "brew install ...")
# run with the rights it needs: as root directly, otherwise through sudo when sudo needs no
# password (brew runs as the user). Returns 1 when it cannot be tried or fails.
APT_UPDATED=""
system_install() {
    local what="$1" install="$2" as_root=""
    if [ "${install#brew}" != "$install" ]; then
        say "Installing $what: $install"
        $install
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
        as_root="sudo"
    fi
    say "Installing $what: ${as_root:+sudo }$install"
    if [ "${install#apt-get}" != "$install" ] && [ -z "$APT_UPDATED" ]; then
        $as_root apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    $as_root env DEBIAN_FRONTEND=noninteractive $install >/dev/null
}

ensure_exiftool() {
    command -v exiftool >/dev/null 2>&1 && return 0
    local install=""
    if command -v apt-get >/dev/null 2>&1; then
        install="apt-get install -y libimage-exiftool-perl"
    elif command -v dnf >/dev/null 2>&1; then
        install="dnf install -y perl-Image-ExifTool"
    elif command -v brew >/dev/null 2>&1; then
        install="brew install exiftool"
    fi
    [ -n "$install" ] && { system_install ExifTool "$install" || true; }
    if ! command -v exiftool >/dev/null 2>&1; then
        say "Error: ExifTool is not installed. Install it with: sudo ${install:-apt-get install libimage-exiftool-perl} (or see https://exiftool.org), then run this again."
        exit 1
    fi
}

# Which test tools are missing: sets MISSING (Debian packages) and SKIPPED (the tests that
# skip themselves without them).
check_test_tools() {
    MISSING="" SKIPPED=""
    if [ ! -x /usr/bin/chromium ]; then
        MISSING="chromium"
        SKIPPED="tests/web/test_browser.py (the page in Chromium at /usr/bin/chromium)"
    fi
    if ! command -v darktable-cli >/dev/null 2>&1; then
        MISSING="${MISSING:+$MISSING }darktable"
        SKIPPED="${SKIPPED:+$SKIPPED; }the darktable-cli test in tests/rating/test_rating_imaging.py"
    fi
}

# Chromium and darktable-cli: installed where this script can (apt-get as root or with
# password-less sudo, like ExifTool); otherwise it says which tests skip and how to run them.
ensure_test_tools() {
    check_test_tools
    [ -z "$MISSING" ] && return 0
    if command -v apt-get >/dev/null 2>&1; then
        system_install "the test tools" "apt-get install -y $MISSING" || true
        check_test_tools
        [ -z "$MISSING" ] && return 0
    fi
    say "These tests will be skipped: $SKIPPED."
    say "To run them: sudo apt-get install -y $MISSING   (Debian/Ubuntu; elsewhere install Chromium as /usr/bin/chromium and darktable)"
}

ensure_venv() {
    local extras="$1" stamp
    if [ ! -x "$VENV/bin/python" ]; then
        say "Creating the virtual environment in $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml or the wanted extras changed.
    stamp="$VENV/.aimeta-installed-$(cksum pyproject.toml | cut -d' ' -f1)-${extras:-base}"
    if [ ! -f "$stamp" ]; then
        say "Installing aimeta${extras:+ with [$extras]} into $VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
        rm -f "$VENV"/.aimeta-installed-*
        touch "$stamp"
    fi
}

case "${1:-}" in
    test)
        shift
        ensure_exiftool
        ensure_test_tools
        ensure_venv "dev"
        "$VENV/bin/ruff" check src tests bench examples
        "$VENV/bin/mypy"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    "")
        ensure_exiftool
        ensure_venv ""
        input="Input"
        if [ -z "$(find Input -type f ! -name '.gitkeep' -print -quit 2>/dev/null)" ]; then
            say "Input/ is empty: reading the bundled examples/ instead (put your images in Input/)."
            input="examples"
        fi
        exec "$VENV/bin/aimeta" all "$input"
        ;;
    *)
        ensure_exiftool
        ensure_venv ""
        exec "$VENV/bin/aimeta" "$@"
        ;;
esac
