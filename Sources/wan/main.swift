import Foundation
import WanPipelines
import WanRuntime

// wan: the command line of the Wan 2.1 engine.

let usage = """
    usage: wan <command> [options]

    commands:
      generate --model PATH...|tiny --prompt TEXT [--size WxH] [--frames N] [--steps N] [--seed N] [--out FILE] ...
                           text to video (or an image with --frames 1); `wan generate --help` for every option
      plan [--model 1.3b|14b|tiny] [--dit FILE [--heads N]] [--t5 FILE] [--vae FILE] [--size WxH] [--frames N]
           [--precision fp32|fp16|bf16|fp8] [--vram-budget SIZE] [--device auto|cpu|vulkan:N] [--json]
                           device memory of each stage (umT5, DiT, VAE) and the budget-saving steps, without
                           loading or running anything
      devices [--json]     list the compute devices (cpu and every Vulkan device) and their capabilities
      tokenize --tokenizer FILE [--json] [--max-length N] TEXT...
                           umT5 ids of each prompt after Wan's cleaning, with EOS (--pieces, --no-clean)
      forward dit|t5|vae-encode|vae-decode|sample --weights FILE --inputs FILE.safetensors --out FILE.safetensors
              [--prefix P] [--config JSON] [--device cpu|vulkan:N|auto] [--precision fp32|fp16|bf16|fp8] [--text-len N]
              [--steps N --shift S --guidance G --sampler unipc|dpm++|euler]   (sample)
                           run one model component on named inputs (x, t, context, context_lens / ids, mask /
                           latent / video / noise, context_cond, context_uncond) and write its outputs
                           (out / context / video / latent, timesteps, sigmas), to compare with a PyTorch run
      inspect FILE... [--tensors] [--custom] [--heads N]
                           format, tensors, detected component / naming / variant / config of checkpoints
                           (safetensors, sharded index, torch .pth), or what is missing, extra or misshapen

    Device selectors used by the other commands: cpu, auto, vulkan:N.
    """

func devicesCommand(_ args: [String]) throws {
    let json = args.contains("--json")
    var list: [Device.VulkanDeviceInfo] = []
    var vulkanError: String?
    do { list = try Device.enumerateVulkan() } catch { vulkanError = "\(error)" }
    let cpu = Device.cpu()
    if json {
        var items: [[String: Any]] = [["selector": "cpu", "name": cpu.label]]
        for info in list {
            let c = info.capabilities
            items.append([
                "selector": "vulkan:\(info.index)", "name": c.deviceName, "type": c.deviceType,
                "api": c.apiVersion, "driver": c.driverName, "subgroupSize": c.subgroupSize,
                "sharedMemory": c.maxComputeSharedMemorySize, "maxStorageBufferRange": c.maxStorageBufferRange,
                "maxMemoryAllocationSize": c.maxMemoryAllocationSize, "deviceLocalBytes": c.deviceLocalBytes,
                "fp16": c.shaderFloat16, "int8": c.shaderInt8, "bufferDeviceAddress": c.bufferDeviceAddress,
                "nvCooperativeMatrix": c.nvCooperativeMatrix, "khrCooperativeMatrix": c.khrCooperativeMatrix,
                "cooperativeMatrixShapes": (c.cooperativeMatrixShapesKHR + c.cooperativeMatrixShapesNV).map(\.description),
                "timestamps": c.timestampSupported,
            ])
        }
        let data = try JSONSerialization.data(withJSONObject: items, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        return
    }
    print("cpu: \(cpu.label)")
    for info in list {
        print("vulkan:\(info.index): \(info.capabilities)")
    }
    if let vulkanError { print("vulkan: none (\(vulkanError))") }
    else if list.isEmpty { print("vulkan: no devices") }
    if let auto = try? Device.open("auto") { print("auto selects: \(auto.name)") }
}

let args = Array(CommandLine.arguments.dropFirst())
do {
    switch args.first {
    case "devices": try devicesCommand(Array(args.dropFirst()))
    case "plan": try planCommand(Array(args.dropFirst()))
    case "tokenize": try tokenizeCommand(Array(args.dropFirst()))
    case "inspect": try inspectCommand(Array(args.dropFirst()))
    case "forward": try forwardCommand(Array(args.dropFirst()))
    case "generate":
        if args.contains("--help") || args.contains("-h") { print(GenerateArguments.usage) } else {
            try generateCommand(Array(args.dropFirst()))
        }
    case "-h", "--help", "help", nil: print(usage)
    default:
        print("wan: unknown command '\(args[0])'\n\n\(usage)")
        exit(2)
    }
} catch {
    print("wan: error: \(error)")
    exit(1)
}
