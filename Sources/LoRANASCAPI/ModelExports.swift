import CLoRANAS
import Foundation
import LoRANAS

typealias ModelHandle = Handle<MllamaModel>

@_cdecl("loranas_model_load")
public func loranas_model_load(
    _ path: UnsafePointer<CChar>?, _ dtype: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let model = try MllamaModel(path: try string(path, "path"), dtype: try weightDType(dtype))
        out.pointee = ModelHandle.retain(model)
    }
}

/// A C string naming a `WeightDType`; NULL is float32.
func weightDType(_ p: UnsafePointer<CChar>?) throws -> WeightDType {
    let name = p.map { String(cString: $0) } ?? WeightDType.float32.rawValue
    guard let type = WeightDType(rawValue: name) else {
        throw LoRANASError.invalidArgument("dtype must be float32 or bfloat16, got \(name)")
    }
    return type
}

@_cdecl("loranas_model_init")
public func loranas_model_init(
    _ path: UnsafePointer<CChar>?, _ seed: UInt64, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        out.pointee = ModelHandle.retain(try MllamaModel.untrained(path: try string(path, "path"), seed: seed))
    }
}

@_cdecl("loranas_model_free")
public func loranas_model_free(_ h: OpaquePointer?) { ModelHandle.release(h) }

@_cdecl("loranas_model_describe")
public func loranas_model_describe(
    _ h: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ len: Int64,
    _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let text = try ModelHandle.borrow(h, "model").with { ModelSummary(config: $0.config).json.serialized }
        try copyCString(text, into: buf, capacity: len, needed: outLen)
    }
}

@_cdecl("loranas_model_use_bfloat16")
public func loranas_model_use_bfloat16(
    _ h: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ len: Int64, _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let summary = try ModelHandle.borrow(h, "model").with { try $0.useBFloat16() }
        try copyCString(summary, into: buf, capacity: len, needed: outLen)
    }
}

@_cdecl("loranas_model_forward")
public func loranas_model_forward(
    _ h: OpaquePointer?, _ batch: UnsafePointer<loranas_batch>?, _ logits: UnsafeMutablePointer<Float>?,
    _ logitsCount: Int64, _ loss: UnsafeMutablePointer<Float>?, _ hasLoss: UnsafeMutablePointer<Int32>?
) -> Int32 {
    guarded {
        let model = try ModelHandle.borrow(h, "model")
        let logits = try arg(logits, "logits")
        let b = try makeBatch(try arg(batch, "batch").pointee, config: model.value.config)
        try model.with { m in
            let expected = b.batchSize * b.seqLen * m.config.text.vocabSize
            try require(logitsCount == expected, "logits holds \(logitsCount) floats, expected B×S×vocab = \(expected)")
            let pass = try m.forward(b)
            logits.update(from: pass.logits.ptr, count: expected)
            hasLoss?.pointee = pass.loss == nil ? 0 : 1
            loss?.pointee = pass.loss ?? .nan
        }
    }
}

/// Copies a C batch into Swift arrays, checking every dimension before reading any buffer.
func makeBatch(_ c: loranas_batch, config: MllamaConfig) throws -> MllamaBatch {
    let b = Int(c.batch_size), s = Int(c.seq_len)
    try require(
        b > 0 && s > 0 && b <= 1 << 20 && s <= 1 << 24, "batch_size and seq_len must be positive, got (\(b), \(s))")
    func ints(_ p: UnsafePointer<Int64>?, _ n: Int) -> [Int]? { p.map { p in (0..<n).map { Int(p[$0]) } } }
    guard let ids = ints(c.input_ids, b * s) else { throw LoRANASError.invalidArgument("input_ids is NULL") }
    var batch = MllamaBatch(
        inputIds: ids, batchSize: b, seqLen: s, attentionMask: ints(c.attention_mask, b * s),
        labels: ints(c.labels, b * s))
    guard let px = c.pixel_values else {
        try require(
            c.aspect_ratio_ids == nil && c.aspect_ratio_mask == nil && c.cross_attention_mask == nil
                && c.num_images <= 0,
            "aspect_ratio_ids, aspect_ratio_mask, cross_attention_mask and num_images need pixel_values")
        return batch
    }
    let i = Int(c.num_images), t = Int(c.num_tiles), ch = Int(c.channels), hh = Int(c.height), ww = Int(c.width)
    let v = config.vision
    try require(i > 0 && i <= 64, "num_images must be in 1...64 with pixel_values, got \(i)")
    try require(
        t == v.maxNumTiles && ch == v.numChannels && hh == v.imageSize && ww == v.imageSize,
        "pixel_values tiles are (T, C, H, W) = (\(t), \(ch), \(hh), \(ww)); the model expects "
            + "(\(v.maxNumTiles), \(v.numChannels), \(v.imageSize), \(v.imageSize))")
    let pixels = Tensor(zeros: [b, i, t, ch, hh, ww])
    pixels.ptr.update(from: px, count: pixels.count)
    batch.pixelValues = pixels
    batch.numImages = i
    batch.aspectRatioIds = ints(c.aspect_ratio_ids, b * i)
    batch.aspectRatioMask = ints(c.aspect_ratio_mask, b * i * t)
    batch.crossAttentionMask = ints(c.cross_attention_mask, b * s * i * t)
    return batch
}
