# aimeta on Windows (PowerShell), from a fresh clone:
#   .\run.ps1          set up, then read Input\ (or the bundled examples\) into out\images.db
#   .\run.ps1 test     set up, then run the whole test suite (says which tests skip on Windows)
#   .\run.ps1 <args>   set up, then run `aimeta <args>`
$ErrorActionPreference = "Stop"
Set-Location -Path $PSScriptRoot

$Venv = ".venv"
$Python = if ($env:PYTHON) { $env:PYTHON } else { "py" }

function Ensure-ExifTool {
    if (Get-Command exiftool -ErrorAction SilentlyContinue) { return }
    if (Get-Command winget -ErrorAction SilentlyContinue) {
        Write-Host "Installing ExifTool: winget install -e --id OliverBetz.ExifTool"
        winget install -e --id OliverBetz.ExifTool --accept-source-agreements --accept-package-agreements | Out-Null
        $env:Path = [System.Environment]::GetEnvironmentVariable("Path", "Machine") + ";" +
                    [System.Environment]::GetEnvironmentVariable("Path", "User")
    }
    if (-not (Get-Command exiftool -ErrorAction SilentlyContinue)) {
        Write-Error "Error: ExifTool is not installed. Install it with: winget install -e --id OliverBetz.ExifTool (or from https://exiftool.org), then run this again."
        exit 1
    }
}

function Ensure-Venv([string]$Extras) {
    if (-not (Test-Path "$Venv\Scripts\python.exe")) {
        Write-Host "Creating the virtual environment in $Venv"
        & $Python -m venv $Venv
    }
    $hash = (Get-FileHash pyproject.toml -Algorithm SHA256).Hash.Substring(0, 12)
    $name = if ($Extras) { $Extras -replace ",", "-" } else { "base" }
    $stamp = "$Venv\.aimeta-installed-$hash-$name"
    if (-not (Test-Path $stamp)) {
        $target = if ($Extras) { ".[$Extras]" } else { "." }
        Write-Host "Installing aimeta $target into $Venv"
        & "$Venv\Scripts\python.exe" -m pip install --quiet --upgrade pip
        & "$Venv\Scripts\python.exe" -m pip install --quiet -e $target
        Remove-Item "$Venv\.aimeta-installed-*" -ErrorAction SilentlyContinue
        New-Item -ItemType File -Path $stamp | Out-Null
    }
}

$command = if ($args.Count -gt 0) { $args[0] } else { "" }
if ($command -eq "test") {
    Ensure-ExifTool
    Ensure-Venv "dev"
    # The browser test needs Debian's Chromium at /usr/bin/chromium, so it always skips here.
    Write-Host "These tests will be skipped: tests/web/test_browser.py (needs Chromium at /usr/bin/chromium, Linux only)."
    if (-not (Get-Command darktable-cli -ErrorAction SilentlyContinue)) {
        Write-Host "Also skipped: the darktable-cli test in tests/rating/test_rating_imaging.py. To run it, install darktable (https://www.darktable.org) and add its bin folder, which holds darktable-cli.exe, to PATH."
    }
    & "$Venv\Scripts\ruff.exe" check src tests bench examples
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    & "$Venv\Scripts\mypy.exe"
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    & "$Venv\Scripts\python.exe" -m pytest @($args | Select-Object -Skip 1)
    exit $LASTEXITCODE
} elseif ($command -eq "") {
    Ensure-ExifTool
    Ensure-Venv ""
    $input_dir = "Input"
    $files = Get-ChildItem -Path Input -File -Recurse -ErrorAction SilentlyContinue | Where-Object { $_.Name -ne ".gitkeep" }
    if (-not $files) {
        Write-Host "Input\ is empty: reading the bundled examples\ instead (put your images in Input\)."
        $input_dir = "examples"
    }
    & "$Venv\Scripts\aimeta.exe" all $input_dir
    exit $LASTEXITCODE
} else {
    Ensure-ExifTool
    Ensure-Venv ""
    & "$Venv\Scripts\aimeta.exe" @args
    exit $LASTEXITCODE
}
