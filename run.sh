#!/usr/bin/env bash
# aimeta on Linux/macOS, from a fresh clone:
#   ./run.sh          set up, then read Input/ (or the bundled examples/) into out/images.db
#   ./run.sh test     set up, then run the whole test suite (what CI runs)
#   ./run.sh <args>   set up, then run `aimeta <args>`
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=".venv"

say() { printf '%s\n' "$*" >&2; }

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
    if [ -n "$install" ]; then
        if [ "$(id -u)" = 0 ]; then
            say "Installing ExifTool: $install"
            [ "${install#apt-get}" != "$install" ] && apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $install >/dev/null
        elif [ "${install#brew}" != "$install" ]; then
            say "Installing ExifTool: $install"
            $install
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            say "Installing ExifTool: sudo $install"
            [ "${install#apt-get}" != "$install" ] && sudo apt-get update -qq
            sudo DEBIAN_FRONTEND=noninteractive $install >/dev/null
        fi
    fi
    if ! command -v exiftool >/dev/null 2>&1; then
        say "Error: ExifTool is not installed. Install it with: sudo ${install:-apt-get install libimage-exiftool-perl} (or see https://exiftool.org), then run this again."
        exit 1
    fi
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
