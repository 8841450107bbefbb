@echo off
rem aimeta on Windows (cmd.exe): the same as run.ps1 (run.cmd, run.cmd test, run.cmd ARGS...).
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0run.ps1" %*
exit /b %ERRORLEVEL%
