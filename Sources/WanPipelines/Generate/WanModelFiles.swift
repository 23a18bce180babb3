import Foundation
import WanModels
import WanRuntime

/// The files of one Wan 2.1 text-to-video model: DiT, VAE, umT5 text encoder and tokenizer, found in what the
/// user gave `--model` (spec §4.1-4.5): the official release folder, a diffusers folder, ComfyUI single files,
/// or any mix of folders and files. Checkpoint files are recognised by their tensors (headers only), not their
/// names; tokenizers by being a `tokenizer.json` or a SentencePiece `.model`.
public struct WanModelFiles: Sendable, Equatable {
    /// The DiT checkpoint (a file, a `*.safetensors.index.json`, or a folder holding one of them).
    public var dit: String
    /// The VAE checkpoint.
    public var vae: String
    /// The umT5 encoder checkpoint.
    public var textEncoder: String
    /// `tokenizer.json` or `spiece.model` of `google/umt5-xxl`.
    public var tokenizer: String
    /// The DiT's `config.json` next to it (official or diffusers), when there is one: gives `num_heads`,
    /// which tensor shapes cannot.
    public var ditConfigJSON: String?

    /// Every path, for the generation record.
    public var all: [String] { [dit, textEncoder, vae, tokenizer] + (ditConfigJSON.map { [$0] } ?? []) }

    public init(dit: String, vae: String, textEncoder: String, tokenizer: String, ditConfigJSON: String? = nil) {
        self.dit = dit
        self.vae = vae
        self.textEncoder = textEncoder
        self.tokenizer = tokenizer
        self.ditConfigJSON = ditConfigJSON
    }

    /// Finds the four components in `paths` (folders and/or files); `tokenizer` overrides the tokenizer
    /// (ComfyUI users have none on disk). Throws `GenerationError.modelFiles` naming what is missing, ambiguous
    /// or unreadable, before anything is loaded.
    public static func resolve(_ paths: [String], tokenizer: String? = nil) throws -> WanModelFiles {
        guard !paths.isEmpty else { throw GenerationError.modelFiles("no model given (--model PATH..., or --model tiny)") }
        var found: [WanComponent: [String]] = [:]
        var tokenizers: [String] = []
        var configs: [String] = []
        let fm = FileManager.default
        for path in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
                throw GenerationError.modelFiles("\(path): no such file or folder")
            }
            if isDir.boolValue {
                try scanFolder(path, into: &found, tokenizers: &tokenizers, configs: &configs)
            } else {
                try classifyFile(path, into: &found, tokenizers: &tokenizers)
            }
        }
        if let tokenizer { tokenizers = [tokenizer] }
        func one(_ c: WanComponent, _ what: String) throws -> String {
            let list = found[c] ?? []
            guard let first = list.first else {
                throw GenerationError.modelFiles("no \(what) among \(paths.joined(separator: ", ")); give its file with --model")
            }
            guard list.count == 1 else {
                throw GenerationError.modelFiles("several \(what) checkpoints: \(list.joined(separator: ", ")); give only one")
            }
            return first
        }
        let dit = try one(.dit, "DiT (diffusion transformer)")
        let vae = try one(.vae, "VAE")
        let t5 = try one(.t5, "umT5 text encoder")
        // Prefer tokenizer.json (exact HF behaviour) over spiece.model when a folder holds both.
        let sortedTokenizers = tokenizers.sorted { a, b in a.hasSuffix(".json") && !b.hasSuffix(".json") }
        guard let tok = sortedTokenizers.first else {
            throw GenerationError.modelFiles("no tokenizer (tokenizer.json or spiece.model of google/umt5-xxl) among \(paths.joined(separator: ", ")); give it with --tokenizer")
        }
        let ditDir = URL(fileURLWithPath: dit).deletingLastPathComponent().path
        let config = configs.first { URL(fileURLWithPath: $0).deletingLastPathComponent().path == ditDir } ?? configs.first
        return WanModelFiles(dit: dit, vae: vae, textEncoder: t5, tokenizer: tok, ditConfigJSON: config)
    }

    /// The official layout (`diffusion_pytorch_model*.safetensors`, `Wan2.1_VAE.pth`,
    /// `models_t5_umt5-xxl-enc-bf16.pth`, `google/umt5-xxl/`) and the diffusers layout (`transformer/`, `vae/`,
    /// `text_encoder/`, `tokenizer/`): every checkpoint in the folder and its first-level sub-folders is classified
    /// by its tensors; shards of one index count once.
    static func scanFolder(_ folder: String, into found: inout [WanComponent: [String]], tokenizers: inout [String],
                           configs: inout [String]) throws {
        let fm = FileManager.default
        var dirs = [folder]
        for sub in ["transformer", "vae", "text_encoder", "tokenizer", "google/umt5-xxl"] {
            var isDir: ObjCBool = false
            let p = (folder as NSString).appendingPathComponent(sub)
            if fm.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue { dirs.append(p) }
        }
        for dir in dirs {
            let names = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted()
            let indexes = names.filter { $0.hasSuffix(".safetensors.index.json") }
            var shardNames = Set<String>()
            for index in indexes {
                let p = (dir as NSString).appendingPathComponent(index)
                if let data = fm.contents(atPath: p),
                   let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                   let map = json["weight_map"] as? [String: String] {
                    shardNames.formUnion(map.values)
                }
                try classifyFile(p, into: &found, tokenizers: &tokenizers)
            }
            for name in names {
                let p = (dir as NSString).appendingPathComponent(name)
                if name == "tokenizer.json" || name == "spiece.model" {
                    tokenizers.append(p)
                } else if name == "config.json" && (dir == folder || dir.hasSuffix("transformer")) {
                    configs.append(p)
                } else if (name.hasSuffix(".safetensors") && !shardNames.contains(name)) || name.hasSuffix(".pth") {
                    // CLIP (I2V) and other non-T2V files are skipped by classification.
                    try classifyFile(p, into: &found, tokenizers: &tokenizers, quiet: true)
                }
            }
        }
    }

    /// Adds a checkpoint file under the component its tensor names show; `quiet` skips files that are not a
    /// Wan checkpoint (e.g. in a folder scan) instead of failing.
    static func classifyFile(_ path: String, into found: inout [WanComponent: [String]], tokenizers: inout [String],
                             quiet: Bool = false) throws {
        let lower = path.lowercased()
        if lower.hasSuffix("tokenizer.json") || lower.hasSuffix(".model") {
            tokenizers.append(path)
            return
        }
        let reader: any CheckpointReader
        do {
            reader = try CheckpointFile.open(path)
        } catch {
            if quiet { return }
            throw GenerationError.modelFiles("\(path): \(error)")
        }
        guard let format = WanCheckpointDetector.identify(reader.entries) else {
            if quiet { return }
            throw GenerationError.modelFiles("\(path): not a Wan 2.1 DiT, VAE or umT5 checkpoint (\(reader.entries.count) tensors)")
        }
        guard format.component != .clip else { return }   // I2V's image encoder: not used by text-to-video
        found[format.component, default: []].append(path)
    }
}
