#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the benchmarks need, when missing.
# The Swift toolchain itself (6.x) must already be on PATH.
set -euo pipefail

# rabbitmq-server and redis-server: the cluster's servers (started on loopback by cluster/servers);
# librabbitmq-dev (rabbitmq-c 0.11) and libhiredis-dev (0.14): the C clients the cluster module wraps
# (librabbitmq-dev brings libssl-dev, whose headers the TLS shim includes). openssl and stunnel4: the
# TLS tests make a CA at test time and reach Redis through stunnel, as the pods do.
# chromium and fonts-dejavu-core: the HTML report's browser tests and `make screenshot` (headless).
# build-essential: the C/C++ compiler scripts/local-llm builds llama-cpp-python with (CMake and Ninja
# come from PyPI).
packages=(python3 python3-venv libsqlite3-dev pkg-config librabbitmq-dev libhiredis-dev libssl-dev rabbitmq-server
    redis-server openssl stunnel4 chromium fonts-dejavu-core build-essential)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v swift >/dev/null || { echo "error: swift (6.x) is not on PATH; install a Swift toolchain first" >&2; exit 1; }
