import Foundation
import PackagePlugin

/// Compiles every `Shaders/*.comp` with the system glslangValidator into SPIR-V and embeds it in a
/// generated Swift file (`extension SPIRV { static let <name>: String = "<base64>" }`).
/// One build command per shader, so editing one shader recompiles only that one. Files under
/// `Shaders/include/` are inputs of every command (SwiftPM has no depfiles). `GLSLANG_VALIDATOR`
/// overrides the compiler path.
///
/// Shaders named `*_khr.comp` (VK_KHR_cooperative_matrix) need glslang 13 or newer, which Debian 12 lacks: they
/// are compiled with `WAN_GLSLANG_KHR`, else `.glslang/glslangValidator` in the package (installed by
/// `Benchmarks/glslang-khr.sh`); with neither, their SPIR-V is empty ("not built", which the runtime reports).
/// SwiftPM keeps the commands of an earlier plugin run, so the script clears `.build/plugins/outputs` after installing.
@main
struct ShaderPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let module = target.sourceModule else { return [] }
        let env = ProcessInfo.processInfo.environment
        let glslang = env["GLSLANG_VALIDATOR"] ?? "/usr/bin/glslangValidator"
        let files = module.sourceFiles.map(\.url)
        let includes = files.filter { $0.pathExtension == "glsl" }
        let includeDir = target.directoryURL.appendingPathComponent("include").path
        let work = context.pluginWorkDirectoryURL
        let localKHR = context.package.directoryURL.appendingPathComponent(".glslang/glslangValidator").path
        let glslangKHR = env["WAN_GLSLANG_KHR"] ?? (FileManager.default.isExecutableFile(atPath: localKHR) ? localKHR : nil)
        return files.filter { $0.pathExtension == "comp" }.map { comp in
            let name = comp.deletingPathExtension().lastPathComponent
            let spv = work.appendingPathComponent("\(name).spv").path
            let out = work.appendingPathComponent("SPIRV_\(name).swift")
            let khr = name.hasSuffix("_khr")
            let script: String
            if khr && glslangKHR == nil {
                script = """
                    printf '// %s.comp was not built: it needs glslang 13 or newer (Benchmarks/glslang-khr.sh).\\nextension SPIRV {\\n    public static let %s: String = ""\\n}\\n' '\(name)' '\(name)' > '\(out.path)'
                    """
            } else {
                // glslang echoes the file name on success; on failure run it again so its errors are shown.
                let compiler = khr ? glslangKHR ?? glslang : glslang
                let compile = "'\(compiler)' -V --target-env vulkan1.2 -I'\(includeDir)' -o '\(spv)' '\(comp.path)'"
                script = """
                    set -e
                    if ! \(compile) >/dev/null 2>&1; then \(compile) >&2 || true; exit 1; fi
                    { printf '// Generated from \(name).comp. Do not edit.\\nextension SPIRV {\\n    public static let \(name): String = "'
                      base64 -w0 '\(spv)'; printf '"\\n}\\n'; } > '\(out.path).tmp'
                    mv '\(out.path).tmp' '\(out.path)'
                    """
            }
            return .buildCommand(
                displayName: "Compiling shader \(name).comp",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script],
                inputFiles: [comp] + includes,
                outputFiles: [out])
        }
    }
}
