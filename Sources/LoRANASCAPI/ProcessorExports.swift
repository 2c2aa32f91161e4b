import CLoRANAS
import Foundation
import LoRANAS

typealias ProcessorHandle = Handle<MllamaProcessor>
typealias ProcessorOutputHandle = Handle<MllamaProcessorOutput>

@_cdecl("loranas_processor_load")
public func loranas_processor_load(_ dir: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?)
    -> Int32
{
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let path = try string(dir, "model_dir")
        out.pointee = ProcessorHandle.retain(try MllamaProcessor.load(directory: URL(fileURLWithPath: path)))
    }
}

@_cdecl("loranas_processor_free")
public func loranas_processor_free(_ h: OpaquePointer?) { ProcessorHandle.release(h) }

@_cdecl("loranas_processor_info")
public func loranas_processor_info(
    _ h: OpaquePointer?, _ pad: UnsafeMutablePointer<Int64>?, _ image: UnsafeMutablePointer<Int64>?,
    _ bos: UnsafeMutablePointer<Int64>?, _ eos: UnsafeMutablePointer<Int64>?, _ tileSize: UnsafeMutablePointer<Int64>?,
    _ maxTiles: UnsafeMutablePointer<Int64>?, _ paddingLeft: UnsafeMutablePointer<Int32>?
) -> Int32 {
    guarded {
        let p = try ProcessorHandle.borrow(h, "proc").value
        let outputs = (try arg(pad, "out_pad_token_id"), try arg(image, "out_image_token_id"),
                       try arg(bos, "out_bos_token_id"), try arg(eos, "out_eos_token_id"),
                       try arg(tileSize, "out_tile_size"), try arg(maxTiles, "out_max_tiles"),
                       try arg(paddingLeft, "out_padding_left"))
        outputs.0.pointee = Int64(p.text.padTokenId)
        outputs.1.pointee = Int64(p.text.imageTokenId)
        outputs.2.pointee = Int64(p.tokenizer.tokenToId(p.tokenizerSettings.bosToken) ?? -1)
        outputs.3.pointee = Int64(p.tokenizer.tokenToId(p.tokenizerSettings.eosToken) ?? -1)
        outputs.4.pointee = Int64(p.image.settings.tileSize)
        outputs.5.pointee = Int64(p.image.settings.maxImageTiles)
        outputs.6.pointee = p.text.paddingSide == .left ? 1 : 0
    }
}

@_cdecl("loranas_processor_tokenizer")
public func loranas_processor_tokenizer(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        out.pointee = TokenizerHandle.retain(try ProcessorHandle.borrow(h, "proc").value.tokenizer)
    }
}

/// A JSON array of strings.
private func texts(_ p: UnsafePointer<CChar>?) throws -> [String] {
    guard let list = try JSON.parse(try string(p, "texts_json")).array else {
        throw LoRANASError.invalidArgument("texts_json must be a JSON array of strings")
    }
    return try list.enumerated().map { i, v in
        guard let s = v.string else { throw LoRANASError.invalidArgument("texts_json[\(i)] is not a string") }
        return s
    }
}

@_cdecl("loranas_processor_call")
public func loranas_processor_call(
    _ h: OpaquePointer?, _ textsJSON: UnsafePointer<CChar>?, _ images: UnsafePointer<loranas_image_input>?,
    _ numImages: Int64, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let processor = try ProcessorHandle.borrow(h, "proc").value
        let prompts = try texts(textsJSON)
        try require(!prompts.isEmpty, "texts_json must hold at least one text")
        let grouped = try ImageInputs.grouped(images, count: numImages, batchSize: prompts.count)
        out.pointee = ProcessorOutputHandle.retain(try processor(text: prompts, images: grouped))
    }
}

@_cdecl("loranas_processor_output_free")
public func loranas_processor_output_free(_ h: OpaquePointer?) { ProcessorOutputHandle.release(h) }

@_cdecl("loranas_processor_output_shape")
public func loranas_processor_output_shape(
    _ h: OpaquePointer?, _ batch: UnsafeMutablePointer<Int64>?, _ seqLen: UnsafeMutablePointer<Int64>?,
    _ maxImages: UnsafeMutablePointer<Int64>?, _ maxTiles: UnsafeMutablePointer<Int64>?,
    _ tileSize: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let output = try ProcessorOutputHandle.borrow(h, "output").value
        let sizes = (try arg(batch, "out_batch"), try arg(seqLen, "out_seq_len"), try arg(maxImages, "out_max_images"),
                     try arg(maxTiles, "out_max_tiles"), try arg(tileSize, "out_tile_size"))
        sizes.0.pointee = Int64(output.text.batchSize)
        sizes.1.pointee = Int64(output.text.sequenceLength)
        sizes.2.pointee = Int64(output.text.maxImages)
        sizes.3.pointee = Int64(output.text.maxTiles)
        sizes.4.pointee = Int64(output.tileSize)
    }
}

/// Copies `values` into a caller buffer of `count` elements (NULL allowed for an empty array).
private func fill<T>(_ dst: UnsafeMutablePointer<T>?, _ name: String, count: Int64, from values: [T]) throws {
    try require(count >= 0, "\(name)_count must be non-negative, got \(count)")
    try require(count >= Int64(values.count), "\(name) holds \(count) elements, \(values.count) needed")
    if values.isEmpty { return }
    let dst = try arg(dst, name)
    values.withUnsafeBytes { src in
        if let base = src.baseAddress { UnsafeMutableRawPointer(dst).copyMemory(from: base, byteCount: src.count) }
    }
}

@_cdecl("loranas_processor_output_read")
public func loranas_processor_output_read(
    _ h: OpaquePointer?, _ inputIds: UnsafeMutablePointer<Int64>?, _ attentionMask: UnsafeMutablePointer<Int64>?,
    _ idsCount: Int64, _ crossMask: UnsafeMutablePointer<Int64>?, _ crossCount: Int64,
    _ pixels: UnsafeMutablePointer<Float>?, _ pixelCount: Int64, _ ratioIds: UnsafeMutablePointer<Int64>?,
    _ ratioIdsCount: Int64, _ ratioMask: UnsafeMutablePointer<Int64>?, _ ratioMaskCount: Int64
) -> Int32 {
    guarded {
        let output = try ProcessorOutputHandle.borrow(h, "output").value
        try fill(inputIds, "input_ids", count: idsCount, from: output.text.inputIds)
        try fill(attentionMask, "attention_mask", count: idsCount, from: output.text.attentionMask)
        try fill(crossMask, "cross_attention_mask", count: crossCount, from: output.text.crossAttentionMask)
        try fill(pixels, "pixel_values", count: pixelCount, from: output.pixelValues)
        try fill(ratioIds, "aspect_ratio_ids", count: ratioIdsCount, from: output.aspectRatioIds)
        try fill(ratioMask, "aspect_ratio_mask", count: ratioMaskCount, from: output.aspectRatioMask)
    }
}

@_cdecl("loranas_processor_chat_template")
public func loranas_processor_chat_template(
    _ h: OpaquePointer?, _ messagesJSON: UnsafePointer<CChar>?, _ addGenerationPrompt: Int32,
    _ date: UnsafePointer<CChar>?, _ buf: UnsafeMutablePointer<CChar>?, _ bufLen: Int64,
    _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let processor = try ProcessorHandle.borrow(h, "proc").value
        let messages = try ChatMessage.list(json: try string(messagesJSON, "messages_json"))
        let chat = try ChatFormat.render(
            messages, addGenerationPrompt: addGenerationPrompt != 0,
            dateString: date == nil ? nil : try string(date, "date_string"),
            bosToken: processor.tokenizerSettings.bosToken)
        try copyCString(chat.text, into: buf, capacity: bufLen, needed: outLen)
    }
}
