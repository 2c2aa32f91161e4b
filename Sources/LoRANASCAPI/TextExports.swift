import CLoRANAS
import Foundation
import LoRANAS

/// `date_string` NULL means today's date, as the template's `strftime_now` gives it.
private func dateArgument(_ p: UnsafePointer<CChar>?) throws -> String? {
    p == nil ? nil : try string(p, "date_string")
}

@_cdecl("loranas_chat_render_record")
public func loranas_chat_render_record(
    _ recordJSON: UnsafePointer<CChar>?, _ addGenerationPrompt: Int32, _ date: UnsafePointer<CChar>?,
    _ buf: UnsafeMutablePointer<CChar>?, _ bufLen: Int64, _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let record = try CauldronRecord(json: try string(recordJSON, "record_json"))
        let chat = try ChatFormat.render(
            record.messages, addGenerationPrompt: addGenerationPrompt != 0, dateString: try dateArgument(date))
        try copyCString(chat.text, into: buf, capacity: bufLen, needed: outLen)
    }
}

@_cdecl("loranas_chat_render_messages")
public func loranas_chat_render_messages(
    _ messagesJSON: UnsafePointer<CChar>?, _ addGenerationPrompt: Int32, _ date: UnsafePointer<CChar>?,
    _ buf: UnsafeMutablePointer<CChar>?, _ bufLen: Int64, _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let messages = try ChatMessage.list(json: try string(messagesJSON, "messages_json"))
        let chat = try ChatFormat.render(
            messages, addGenerationPrompt: addGenerationPrompt != 0, dateString: try dateArgument(date))
        try copyCString(chat.text, into: buf, capacity: bufLen, needed: outLen)
    }
}

/// `count` int64 values at `p` (NULL allowed when count is 0) as Ints.
private func int64s(_ p: UnsafePointer<Int64>?, _ count: Int64, _ name: String) throws -> [Int] {
    try require(count >= 0 && count <= 1 << 20, "\(name)_count must be in 0...2^20, got \(count)")
    if count == 0 { return [] }
    return UnsafeBufferPointer(start: try arg(p, name), count: Int(count)).map { Int($0) }
}

/// Copies `values` into `dst`, a caller buffer of `count` elements: NULL or a negative count is an error, and
/// a count below `values.count` gives LORANAS_ERR_BUFFER_TOO_SMALL.
private func copy(_ values: [Int64], to dst: UnsafeMutablePointer<Int64>?, _ name: String, count: Int64) throws {
    try require(count >= 0, "\(name)_count must be non-negative, got \(count)")
    guard count >= Int64(values.count) else {
        throw BufferTooSmall(
            needed: values.count, message: "\(name) holds \(count) elements, \(values.count) needed")
    }
    if values.isEmpty { return }
    let dst = try arg(dst, name)
    for (i, v) in values.enumerated() { dst[i] = v }
}

@_cdecl("loranas_text_encode_record")
public func loranas_text_encode_record(
    _ h: OpaquePointer?, _ recordJSON: UnsafePointer<CChar>?, _ date: UnsafePointer<CChar>?,
    _ numTiles: UnsafePointer<Int64>?, _ numTilesCount: Int64, _ maxImageTiles: Int64, _ maxLength: Int64,
    _ ids: UnsafeMutablePointer<Int64>?, _ labels: UnsafeMutablePointer<Int64>?, _ capacity: Int64,
    _ crossMask: UnsafeMutablePointer<Int64>?, _ maskCount: Int64, _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let tokenizer = try TokenizerHandle.borrow(h, "tok").value
        let outLen = try arg(outLen, "out_len")
        try require(maxImageTiles >= 1 && maxImageTiles <= 1024, "max_image_tiles must be in 1...1024")
        try require(maxLength >= 0, "max_length must be non-negative (0: no limit), got \(maxLength)")
        let tiles = try int64s(numTiles, numTilesCount, "num_tiles")
        let record = try CauldronRecord(json: try string(recordJSON, "record_json"))
        try require(tiles.count == record.imageCount,
                    "the record has \(record.imageCount) images but num_tiles_count is \(tiles.count)")
        let chat = try ChatFormat.render(record.messages, dateString: try dateArgument(date))
        let processor = try MllamaTextProcessor(
            tokenizer: tokenizer, padTokenId: 0, maxImageTiles: Int(maxImageTiles))
        let limit = maxLength == 0 ? nil : Int(clamping: maxLength)
        guard let out = try processor.encode(chat: chat, numTiles: tiles, maxLength: limit) else {
            outLen.pointee = 0
            return
        }
        outLen.pointee = Int64(out.sequenceLength)
        if ids == nil && labels == nil && crossMask == nil && capacity == 0 && maskCount == 0 { return }
        try copy(out.inputIds, to: ids, "ids", count: capacity)
        try copy(out.labels, to: labels, "labels", count: capacity)
        try copy(out.crossAttentionMask, to: crossMask, "cross_attention_mask", count: maskCount)
    }
}

@_cdecl("loranas_text_encode_prompts")
public func loranas_text_encode_prompts(
    _ h: OpaquePointer?, _ promptsJSON: UnsafePointer<CChar>?, _ numTilesJSON: UnsafePointer<CChar>?,
    _ maxImageTiles: Int64, _ padTokenId: Int64, _ paddingLeft: Int32,
    _ inputIds: UnsafeMutablePointer<Int64>?, _ attentionMask: UnsafeMutablePointer<Int64>?, _ idsCount: Int64,
    _ crossMask: UnsafeMutablePointer<Int64>?, _ maskCount: Int64,
    _ outBatch: UnsafeMutablePointer<Int64>?, _ outSeqLen: UnsafeMutablePointer<Int64>?,
    _ outMaxImages: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let tokenizer = try TokenizerHandle.borrow(h, "tok").value
        let outBatch = try arg(outBatch, "out_batch")
        let outSeqLen = try arg(outSeqLen, "out_seq_len")
        let outMaxImages = try arg(outMaxImages, "out_max_images")
        try require(maxImageTiles >= 1 && maxImageTiles <= 1024, "max_image_tiles must be in 1...1024")
        try require(padTokenId >= 0 && padTokenId <= Int64(Int32.max), "pad_token_id must be in 0...2^31-1")
        guard let list = try JSON.parse(try string(promptsJSON, "prompts_json")).array else {
            throw LoRANASError.invalidArgument("prompts_json must be a JSON array of strings")
        }
        var prompts: [String] = []
        for (i, p) in list.enumerated() {
            guard let s = p.string else { throw LoRANASError.invalidArgument("prompts_json[\(i)] is not a string") }
            prompts.append(s)
        }
        guard let tileLists = try JSON.parse(try string(numTilesJSON, "num_tiles_json")).array else {
            throw LoRANASError.invalidArgument("num_tiles_json must be a JSON array of arrays of integers")
        }
        var tiles: [[Int]] = []
        for (b, sample) in tileLists.enumerated() {
            guard let items = sample.array else {
                throw LoRANASError.invalidArgument("num_tiles_json[\(b)] is not an array")
            }
            let counts = items.compactMap(\.int)
            guard counts.count == items.count else {
                throw LoRANASError.invalidArgument("num_tiles_json[\(b)] holds a value that is not an integer")
            }
            tiles.append(counts)
        }
        let processor = try MllamaTextProcessor(
            tokenizer: tokenizer, padTokenId: Int(padTokenId), paddingSide: paddingLeft != 0 ? .left : .right,
            maxImageTiles: Int(maxImageTiles))
        let out = try processor.encode(prompts, numTiles: tiles)
        outBatch.pointee = Int64(out.batchSize)
        outSeqLen.pointee = Int64(out.sequenceLength)
        outMaxImages.pointee = Int64(out.maxImages)
        if inputIds == nil && attentionMask == nil && crossMask == nil && idsCount == 0 && maskCount == 0 { return }
        try copy(out.inputIds, to: inputIds, "input_ids", count: idsCount)
        try copy(out.attentionMask, to: attentionMask, "attention_mask", count: idsCount)
        try copy(out.crossAttentionMask, to: crossMask, "cross_attention_mask", count: maskCount)
    }
}
