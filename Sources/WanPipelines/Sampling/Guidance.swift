import WanRuntime

/// Classifier-free guidance (spec §8.6): `v = v_uncond + g·(v_cond − v_uncond)` elementwise in float32, in that
/// operation order (official `noise_pred_uncond + guide_scale * (noise_pred_cond - noise_pred_uncond)`).
/// Throws `RuntimeError.shapeMismatch` for different lengths and `.invalidArgument` for a non-finite scale.
public func classifierFreeGuidance(cond: [Float], uncond: [Float], scale: Float) throws -> [Float] {
    guard scale.isFinite else {
        throw RuntimeError.invalidArgument("guidance scale must be finite, got \(scale)")
    }
    guard cond.count == uncond.count else {
        throw RuntimeError.shapeMismatch(
            "guidance: conditional output has \(cond.count) values, unconditional \(uncond.count)")
    }
    let n = cond.count
    return [Float](unsafeUninitializedCapacity: n) { out, count in
        cond.withUnsafeBufferPointer { c in
            uncond.withUnsafeBufferPointer { u in
                for j in 0..<n { out[j] = u[j] + scale * (c[j] - u[j]) }
            }
        }
        count = n
    }
}
