/// SPIR-V of every compute shader in this folder, one base64 string per `.comp` file, generated at
/// build time by `ShaderPlugin` from the GLSL sources.
public enum SPIRV {}
