import CLoRANAS
import LoRANAS

@_cdecl("loranas_model_generate")
public func loranas_model_generate(
    _ h: OpaquePointer?, _ prompt: UnsafePointer<loranas_batch>?, _ maxNewTokens: Int64, _ temperature: Double,
    _ topP: Double, _ seed: UInt64, _ stopIds: UnsafePointer<Int64>?, _ numStopIds: Int64,
    _ outIds: UnsafeMutablePointer<Int64>?, _ outCount: Int64, _ outLengths: UnsafeMutablePointer<Int64>?,
    _ lengthsCount: Int64
) -> Int32 {
    guarded {
        let model = try ModelHandle.borrow(h, "model")
        let outIds = try arg(outIds, "out_ids"), outLengths = try arg(outLengths, "out_lengths")
        let c = try arg(prompt, "prompt").pointee
        try require((0...(1 << 16)).contains(numStopIds), "num_stop_ids must be in 0...65536, got \(numStopIds)")
        try require(numStopIds == 0 || stopIds != nil, "stop_ids is NULL but num_stop_ids is \(numStopIds)")
        let stops = stopIds.map { p in (0..<Int(numStopIds)).map { Int(p[$0]) } } ?? []
        let (b, n) = (Int(c.batch_size), Int(maxNewTokens))
        try require(lengthsCount == c.batch_size, "out_lengths holds \(lengthsCount) values, expected B = \(b)")
        let (expected, overflow) = c.batch_size.multipliedReportingOverflow(by: maxNewTokens)
        try require(maxNewTokens > 0 && !overflow && outCount == expected,
                    "out_ids holds \(outCount) values, expected B × max_new_tokens = \(b) × \(n)")
        let batch = try makeBatch(c, config: model.value.config)
        let options = GenerationOptions(maxNewTokens: n, temperature: temperature, topP: topP, seed: seed,
                                        stopTokenIds: stops)
        let tokens = try model.with { try $0.generate(batch, options: options) }
        outIds.update(repeating: -1, count: b * n)
        for (i, row) in tokens.enumerated() {
            outLengths[i] = Int64(row.count)
            for (j, t) in row.enumerated() { outIds[i * n + j] = Int64(t) }
        }
    }
}
