import Foundation
import PackagePlugin

/// Compiles every `Shaders/*.comp` with the system glslangValidator into SPIR-V and embeds it in a
/// generated Swift file (`extension SPIRV { static let <name>: String = "<base64>" }`).
/// One build command per shader, so editing one shader recompiles only that one. Files under
/// `Shaders/include/` are inputs of every command (SwiftPM has no depfiles). `GLSLANG_VALIDATOR`
/// overrides the compiler path.
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
        return files.filter { $0.pathExtension == "comp" }.map { comp in
            let name = comp.deletingPathExtension().lastPathComponent
            let spv = work.appendingPathComponent("\(name).spv").path
            let out = work.appendingPathComponent("SPIRV_\(name).swift")
            // glslang echoes the file name on success; on failure run it again so its errors are shown.
            let compile = "'\(glslang)' -V --target-env vulkan1.2 -I'\(includeDir)' -o '\(spv)' '\(comp.path)'"
            let script = """
                set -e
                if ! \(compile) >/dev/null 2>&1; then \(compile) >&2 || true; exit 1; fi
                { printf '// Generated from \(name).comp. Do not edit.\\nextension SPIRV {\\n    public static let \(name): String = "'
                  base64 -w0 '\(spv)'; printf '"\\n}\\n'; } > '\(out.path).tmp'
                mv '\(out.path).tmp' '\(out.path)'
                """
            return .buildCommand(
                displayName: "Compiling shader \(name).comp",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script],
                inputFiles: [comp] + includes,
                outputFiles: [out])
        }
    }
}
