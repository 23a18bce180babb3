#!/usr/bin/env bash
# GPU check on a lent machine (see ../shared/research/gpu-run-recipe.md). Two halves:
#
#   bash Benchmarks/gpu-check.sh prepare   # here: release binaries (stripped, packed as .gpu.tar.gz) + Debian packages in .gl/
#   bash Benchmarks/gpu-check.sh device    # there (device tool, carry [".gpu.tar.gz", ".gl"], ~38 MiB of the 64 MiB
#                                          # a run may carry): kernel tests + wan-bench (pass suites, e.g. "models pipeline")
#
# prepare also builds the VK_KHR_cooperative_matrix and VK_NV_cooperative_matrix2 shaders (a pinned glslang 15 built from
# Debian's source by Benchmarks/glslang-newer.sh, ~1 min); the
# device half then runs the tensor-core suites on both APIs and wan-bench prints both (plus each API's register-only
# tensor-core peak, the `tensor-core peak` rows of the gemm suite).
# Settings of the device half: TESTS=0 skips the tests, TEST_FILTER / TEST_TIMEOUT / BENCH_TIMEOUT / REPEATS,
# GEMM_TILES / CM2_TILES / CONV_TILES / CONV_CM2_TILES / ATTN_TILES / ATTN_CM2_TILES sweep the tensor-core kernels' tiles. Logs land in $OUT (the device tool's folder).
# Seen on an H200 (2026-12-04): 222 tests pass in ~55 s; `gemm attention conv3d models pipeline` take ~5 min.
# The next run's questions (see the tensor-core peak rows first, then coopmat2 against coopmat: GEMM, attention, conv3d),
# as two calls on the warm machine (one command may run 10 minutes): the tests and the tables, then the tile sweeps:
#   TEST_TIMEOUT=85 BENCH_TIMEOUT=300 REPEATS=2 bash Benchmarks/gpu-check.sh device gemm attention conv3d
#   TESTS=0 CM2_TILES="128x256x64 128x128x64 256x128x32" ATTN_CM2_TILES="128x64 64x128" CONV_CM2_TILES="128x128x64 64x128x32" \
#       bash Benchmarks/gpu-check.sh device
#
# The device half unpacks the Vulkan loader and OpenBLAS, prints `wan devices`, runs the kernel tests
# (Swift Testing) on the GPU's Vulkan driver, then prints the wan-bench tables at full Wan shapes.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"

case "$mode" in
prepare)
    # The VK_KHR_cooperative_matrix and coopmat2 shaders too (a pinned glslang 15); without network, NV only.
    bash Benchmarks/glslang-newer.sh || echo "glslang 15 unavailable: the KHR cooperative-matrix and coopmat2 shaders are not built"
    swift build -c release --static-swift-stdlib --product wan
    swift build -c release --static-swift-stdlib --product wan-bench
    # Swift Testing has no static library: the test binary links the toolchain's shared libraries, which
    # are copied next to it below (the release binaries above carry a static standard library).
    swift build -c release --build-tests -Xswiftc -enable-testing
    bin=$(swift build -c release --show-bin-path)
    rm -rf .gpu && mkdir -p .gpu/lib
    cp "$bin/wan" "$bin/wan-bench" .gpu/
    cp "$bin/WanVulkanPackageTests.xctest" .gpu/tests
    # Toolchain libraries the test binary still links dynamically (Testing, Foundation, ...).
    for f in .gpu/wan .gpu/wan-bench .gpu/tests; do
        ldd "$f" | awk '/=> \/opt\/swift/ {print $3}' | xargs -r -I{} cp -n {} .gpu/lib/
    done
    # Symbols are not needed there; packed, the binaries and the toolchain libraries (ICU data) fit the carry limit.
    strip .gpu/wan .gpu/wan-bench .gpu/tests .gpu/lib/*.so
    tar czf .gpu.tar.gz .gpu
    grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >> .git/info/exclude
    if [ ! -d .gl ] || [ -z "$(ls .gl/*.deb 2>/dev/null)" ]; then
        mkdir -p .gl /tmp/amd64/partial
        o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
        apt-get $o update -qq
        (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 \
            libopenblas0-pthread libgfortran5 libquadmath0)
    fi
    du -sh .gpu .gpu.tar.gz .gl
    ;;
device)
    [ -x .gpu/wan ] || tar xzf .gpu.tar.gz
    for f in .gl/lib{vulkan1,egl1,glvnd0,opengl0,gl1,glx0,gles2}_*.deb; do dpkg -x "$f" /; done
    ldconfig
    mkdir -p /tmp/deps
    for f in .gl/lib{openblas0-pthread,gfortran5,quadmath0}_*.deb; do dpkg -x "$f" /tmp/deps; done
    export LD_LIBRARY_PATH="$PWD/.gpu/lib:/tmp/deps/usr/lib/x86_64-linux-gnu/openblas-pthread:/tmp/deps/usr/lib/x86_64-linux-gnu"
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] \
        && ! .gpu/wan devices 2>/dev/null | grep -q '^vulkan:0'; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    export WAN_REQUIRE_VULKAN=1 WAN_CACHE_DIR=/tmp/wan-cache
    # Logs go to $OUT (the device tool brings that folder back) or /tmp/wan-gpu.
    out="${OUT:-/tmp/wan-gpu}"; mkdir -p "$out"
    # The tests read their fixtures by their source path on the build machine (/work/main/Tests/...).
    [ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
    echo "== devices"; .gpu/wan devices | tee "$out/devices.txt"
    if [ "${TESTS:-1}" != 0 ]; then
        echo "== tests on the GPU (${TEST_FILTER:-all suites}, log: tests.log)"
        # Every suite: kernels against the CPU path, models against the PyTorch goldens, the pipeline.
        timeout "${TEST_TIMEOUT:-240}" .gpu/tests --testing-library swift-testing ${TEST_FILTER:+--filter "$TEST_FILTER"} \
            > "$out/tests.log" 2>&1 || echo "tests exited with $?"
        grep -E "✘|Test run" "$out/tests.log" | grep -v "^.*✘ Test .* recorded an issue with" | tail -40 || true
        grep -E "recorded an issue" -A3 "$out/tests.log" | head -60 || true
        # The tensor-core suites again on VK_KHR_cooperative_matrix (when built and present; else they check the error).
        echo "== tensor-core tests with WAN_COOPMAT_API=khr (log: tests-khr.log)"
        WAN_COOPMAT_API=khr timeout "${TEST_TIMEOUT:-240}" .gpu/tests --testing-library swift-testing --filter "Coopmat" \
            > "$out/tests-khr.log" 2>&1 || echo "KHR tests exited with $?"
        grep -E "✘|Test run|note:" "$out/tests-khr.log" | tail -20 || true
    fi
    # Tile sweeps for tuning the tensor-core kernels: GEMM_TILES / CONV_TILES="128x128x32x64x32 64x64x32x32x32 ...",
    # CM2_TILES / CONV_CM2_TILES="128x256x32 ...", ATTN_TILES="4x64 2x64 ..." and ATTN_CM2_TILES="128x64 ..." time their suite's rows once
    # per tile (14B's self-attention left out).
    sweep() {   # sweep TILES VARIABLE SUITE ROWS
        for t in $1; do
            echo "== $2=$t"
            env "$2=$t" timeout 120 .gpu/wan-bench --device vulkan:0 --full --repeats 2 "$3" 2>&1 \
                | grep -E "$4|FAILED" | grep -v "14B" | tee -a "$out/tiles.log" || true
        done
    }
    sweep "${GEMM_TILES:-}" WAN_GEMM_COOPMAT_TILE gemm coopmat
    sweep "${CM2_TILES:-}" WAN_GEMM_CM2_TILE gemm coopmat2
    sweep "${ATTN_CM2_TILES:-}" WAN_ATTN_CM2_TILE attention coopmat2
    sweep "${CONV_TILES:-}" WAN_CONV_COOPMAT_TILE conv3d coopmat
    sweep "${CONV_CM2_TILES:-}" WAN_CONV_CM2_TILE conv3d coopmat2
    sweep "${ATTN_TILES:-}" WAN_ATTN_COOPMAT_TILE attention coopmat
    [ $# -gt 1 ] || exit 0
    echo "== benchmarks (${*:2})"
    timeout "${BENCH_TIMEOUT:-420}" .gpu/wan-bench --device vulkan:0 --full --repeats "${REPEATS:-3}" "${@:2}" 2>&1 \
        | tee "$out/bench.log" || echo "wan-bench exited with $?"
    ;;
*)
    echo "usage: $0 prepare|device [SUITE...]" >&2
    exit 2
    ;;
esac
