// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "WanVulkan",
    products: [
        .library(name: "WanRuntime", targets: ["WanRuntime"]),
        .library(name: "WanGraph", targets: ["WanGraph"]),
        .library(name: "WanModels", targets: ["WanModels"]),
        .library(name: "WanPipelines", targets: ["WanPipelines"]),
        .executable(name: "wan", targets: ["wan"]),
        .executable(name: "wan-bench", targets: ["wan-bench"]),
    ],
    targets: [
        // System libraries (Debian: libvulkan-dev, libopenblas-dev, zlib1g-dev).
        .systemLibrary(name: "CVulkan", path: "Sources/CVulkan", providers: [.apt(["libvulkan-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // GLSL compute shaders -> SPIR-V (system glslangValidator), embedded as Swift sources.
        .plugin(name: "ShaderPlugin", capability: .buildTool(), path: "Sources/ShaderPlugin"),
        .target(name: "WanShaders", path: "Shaders", plugins: ["ShaderPlugin"]),
        // The tensor runtime: devices, memory, command recording, kernels (Vulkan + CPU).
        .target(name: "WanRuntime", dependencies: ["CVulkan", "COpenBLAS", "WanShaders"]),
        // Static graphs of runtime ops: shape inference, activation memory planning, record once / replay.
        .target(name: "WanGraph", dependencies: ["WanRuntime"]),
        // Checkpoint readers, key maps, variant detection, and the models built on the runtime.
        .target(name: "WanModels", dependencies: ["WanRuntime", "WanGraph"]),
        // Pipelines on top of the models: the umT5 tokenizer and prompt cleaning, samplers, video and image output.
        .target(name: "WanPipelines", dependencies: ["WanModels", "WanRuntime", "CZlib"]),
        .executableTarget(name: "wan", dependencies: ["WanRuntime", "WanModels", "WanPipelines"], path: "Sources/wan"),
        .executableTarget(name: "wan-bench", dependencies: ["WanRuntime", "WanModels", "WanPipelines"], path: "Benchmarks/wan-bench"),
        .testTarget(name: "WanRuntimeTests", dependencies: ["WanRuntime"]),
        .testTarget(name: "WanGraphTests", dependencies: ["WanGraph", "WanRuntime"]),
        .testTarget(name: "WanModelsTests", dependencies: ["WanModels", "WanRuntime", "WanGraph"], exclude: ["Fixtures"]),
        .testTarget(name: "WanPipelinesTests", dependencies: ["WanPipelines", "WanModels", "WanRuntime"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
