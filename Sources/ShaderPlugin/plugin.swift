import Foundation
import PackagePlugin

/// Compiles every `Shaders/*.comp` with the system glslangValidator into SPIR-V and embeds it in a
/// generated Swift file (`extension SPIRV { static let <name>: String = "<base64>" }`).
/// One build command per shader, so editing one shader recompiles only that one. Files under
/// `Shaders/include/` are inputs of every command (SwiftPM has no depfiles). `GLSLANG_VALIDATOR`
/// overrides the compiler path.
///
/// Shaders named `*_khr.comp` (VK_KHR_cooperative_matrix) and `*_cm2.comp` (VK_NV_cooperative_matrix2, SPIR-V 1.6)
/// need a newer glslang than Debian 12's (13 and 15): they are compiled with `WAN_GLSLANG_NEWER`, else
/// `.glslang/glslangValidator` in the package (built by `Benchmarks/glslang-newer.sh`); with neither, their SPIR-V is
/// empty ("not built", which the runtime reports).
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
        let localNewer = context.package.directoryURL.appendingPathComponent(".glslang/glslangValidator").path
        let glslangNewer = env["WAN_GLSLANG_NEWER"] ?? (FileManager.default.isExecutableFile(atPath: localNewer) ? localNewer : nil)
        return files.filter { $0.pathExtension == "comp" }.map { comp in
            let name = comp.deletingPathExtension().lastPathComponent
            let spv = work.appendingPathComponent("\(name).spv").path
            let out = work.appendingPathComponent("SPIRV_\(name).swift")
            let cm2 = name.hasSuffix("_cm2")
            let newer = name.hasSuffix("_khr") || cm2
            let script: String
            if newer && glslangNewer == nil {
                script = """
                    printf '// %s.comp was not built: it needs a newer glslang (Benchmarks/glslang-newer.sh).\\nextension SPIRV {\\n    public static let %s: String = ""\\n}\\n' '\(name)' '\(name)' > '\(out.path)'
                    """
            } else {
                // glslang echoes the file name on success; on failure run it again so its errors are shown.
                let compiler = newer ? glslangNewer ?? glslang : glslang
                let compile = "'\(compiler)' -V --target-env \(cm2 ? "vulkan1.3" : "vulkan1.2") -I'\(includeDir)' -o '\(spv)' '\(comp.path)'"
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
