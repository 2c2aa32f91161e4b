import Foundation

/// Which end of a sequence the pads go to.
public enum PaddingSide: String, Sendable {
    /// Pads after the tokens (transformers' default).
    case right
    /// Pads before the tokens.
    case left
}

/// The text outputs of transformers' `MllamaProcessor` for a batch, padded to the longest sample.
public struct MllamaTextBatch: Sendable, Equatable {
    /// B, the number of samples.
    public var batchSize: Int
    /// S, the padded length.
    public var sequenceLength: Int
    /// I_max, the largest number of images of a sample.
    public var maxImages: Int
    /// T, the tile slots of `crossAttentionMask` (the processor's `max_image_tiles`).
    public var maxTiles: Int
    /// (B, S) token ids.
    public var inputIds: [Int64]
    /// (B, S): 1 for real tokens, 0 for pads.
    public var attentionMask: [Int64]
    /// (B, S, I_max, T): which tiles of which image each position attends to (§2.2).
    public var crossAttentionMask: [Int64]
    /// (B, S) labels when the batch was made from chats, −100 where ignored and on pads; empty otherwise.
    public var labels: [Int64]
}

/// The text path of transformers' `MllamaProcessor` (mllama-processor.md §2): the BOS rule, tokenization,
/// padding and `cross_attention_mask`; and, for rendered chats, the labels of §3.3.
public struct MllamaTextProcessor: Sendable {
    /// The tokenizer.
    public let tokenizer: Tokenizer
    /// The id of `<|image|>`.
    public let imageTokenId: Int
    /// The id pads get.
    public var padTokenId: Int
    /// Where pads go.
    public var paddingSide: PaddingSide
    /// T, the image processor's `max_image_tiles` (the tile dimension of the cross-attention mask).
    public var maxImageTiles: Int

    /// The most elements a `cross_attention_mask` may have (2 GiB of int64); a larger batch is an error.
    public static let maxMaskElements = 1 << 28

    /// A processor over `tokenizer`; a tokenizer without `<|image|>` is an error.
    public init(tokenizer: Tokenizer, padTokenId: Int, paddingSide: PaddingSide = .right, maxImageTiles: Int = 4)
        throws
    {
        guard let image = tokenizer.tokenToId(ChatFormat.imageToken) else {
            throw LoRANASError.invalidArgument("the tokenizer has no \(ChatFormat.imageToken) token")
        }
        guard maxImageTiles >= 1 && maxImageTiles <= 1024 else {
            throw LoRANASError.invalidArgument("max_image_tiles must be in 1...1024, got \(maxImageTiles)")
        }
        self.tokenizer = tokenizer
        imageTokenId = image
        self.padTokenId = padTokenId
        self.paddingSide = paddingSide
        self.maxImageTiles = maxImageTiles
    }

    /// transformers' `build_string_from_input`: a prompt that contains `<|begin_of_text|>` anywhere is unchanged;
    /// otherwise BOS goes after its leading run of `<|image|>`. Returns the prompt and where BOS was inserted
    /// (a UTF-8 byte offset; nil when unchanged).
    public static func applyBOSRule(_ prompt: String) -> (text: String, insertedAt: Int?) {
        let bytes = Array(prompt.utf8)
        if occurrences(of: Array(ChatFormat.bosToken.utf8), in: bytes) > 0 { return (prompt, nil) }
        let image = Array(ChatFormat.imageToken.utf8)
        var at = 0
        while at + image.count <= bytes.count && bytes[at..<(at + image.count)].elementsEqual(image) {
            at += image.count
        }
        let rest = String(decoding: bytes[at...], as: UTF8.self)
        let head = String(decoding: bytes[..<at], as: UTF8.self)
        return (head + ChatFormat.bosToken + rest, at)
    }

    /// The number of non-overlapping occurrences of `needle` in `hay`, left to right (Python's `str.count`).
    static func occurrences(of needle: [UInt8], in hay: [UInt8]) -> Int {
        guard !needle.isEmpty, needle.count <= hay.count else { return 0 }
        var n = 0
        var i = 0
        while i + needle.count <= hay.count {
            if hay[i..<(i + needle.count)].elementsEqual(needle) {
                n += 1
                i += needle.count
            } else {
                i += 1
            }
        }
        return n
    }

    /// `MllamaProcessor(text=prompts, images=..., padding=True)`'s text outputs: `numTiles[b]` lists the tile
    /// count of each image of sample b, in order; a sample's `<|image|>` count must equal its number of images.
    public func encode(_ prompts: [String], numTiles: [[Int]]) throws -> MllamaTextBatch {
        var samples: [[Int]] = []
        for prompt in prompts {
            samples.append(try tokenizer.encode(Self.applyBOSRule(prompt).text, addSpecialTokens: true))
        }
        return try batch(samples, labels: nil, prompts: prompts, numTiles: numTiles)
    }

    /// A batch of rendered chats (``ChatFormat/render(_:addGenerationPrompt:dateString:bosToken:)``) with labels.
    /// The ids are what `encode([chat.text], ...)` gives.
    public func encode(chats: [RenderedChat], numTiles: [[Int]]) throws -> MllamaTextBatch {
        var samples: [[Int]] = []
        var labels: [[Int]] = []
        for chat in chats {
            var c = chat
            let rule = Self.applyBOSRule(chat.text)
            if let at = rule.insertedAt {
                let n = ChatFormat.bosToken.utf8.count
                c.text = rule.text
                c.assistantSpans = chat.assistantSpans.map {
                    $0.lowerBound >= at ? ($0.lowerBound + n)..<($0.upperBound + n) : $0
                }
            }
            let encoded = try Labels.encode(c, tokenizer: tokenizer, addSpecialTokens: true)
            samples.append(encoded.ids)
            labels.append(encoded.labels)
        }
        return try batch(samples, labels: labels, prompts: chats.map(\.text), numTiles: numTiles)
    }

    /// One training sample from a rendered chat, as a batch of one (no padding), cut to `maxLength` tokens.
    ///
    /// Truncation rule: the sequence is cut at the end to its first `maxLength` tokens (rows of the
    /// cross-attention mask included; they equal the mask of the cut ids, since every image token is kept). The
    /// sample is skipped (nil; the caller counts it) when the cut would remove an `<|image|>` token, or would
    /// leave no labelled token, i.e. cut every answer away entirely. A partly cut answer is kept.
    public func encode(chat: RenderedChat, numTiles: [Int], maxLength: Int? = nil) throws -> MllamaTextBatch? {
        let full = try encode(chats: [chat], numTiles: [numTiles])
        guard let maxLength, full.sequenceLength > maxLength else { return full }
        guard maxLength >= 1 else { throw LoRANASError.invalidArgument("max_length must be at least 1") }
        if full.inputIds[maxLength...].contains(Int64(imageTokenId)) { return nil }
        if !full.labels[..<maxLength].contains(where: { $0 != Int64(Labels.ignoreIndex) }) { return nil }
        var out = full
        let row = full.maxImages * full.maxTiles
        out.sequenceLength = maxLength
        out.inputIds = Array(full.inputIds[..<maxLength])
        out.attentionMask = Array(full.attentionMask[..<maxLength])
        out.labels = Array(full.labels[..<maxLength])
        out.crossAttentionMask = Array(full.crossAttentionMask[..<(maxLength * row)])
        return out
    }

    private func batch(_ samples: [[Int]], labels: [[Int]]?, prompts: [String], numTiles: [[Int]]) throws
        -> MllamaTextBatch
    {
        guard !samples.isEmpty else { throw LoRANASError.invalidArgument("a batch needs at least one sample") }
        guard numTiles.count == samples.count else {
            throw LoRANASError.invalidArgument("\(samples.count) texts but tile counts for \(numTiles.count) samples")
        }
        let image = Array(ChatFormat.imageToken.utf8)
        for (b, prompt) in prompts.enumerated() {
            let n = Self.occurrences(of: image, in: Array(prompt.utf8))
            guard n == numTiles[b].count else {
                throw LoRANASError.invalidArgument(
                    "sample \(b): the text has \(n) \(ChatFormat.imageToken) tokens but \(numTiles[b].count) images")
            }
            for (j, t) in numTiles[b].enumerated() where t < 1 || t > maxImageTiles {
                throw LoRANASError.invalidArgument(
                    "sample \(b), image \(j): \(t) tiles, outside 1...\(maxImageTiles) (max_image_tiles)")
            }
        }
        let s = samples.map(\.count).max() ?? 0
        let iMax = numTiles.map(\.count).max() ?? 0
        let t = maxImageTiles
        let cells = [samples.count, s, iMax, t].reduce((1, false)) { acc, d in
            let (v, o) = acc.0.multipliedReportingOverflow(by: d)
            return (v, acc.1 || o)
        }
        guard !cells.1 && cells.0 <= Self.maxMaskElements else {
            throw LoRANASError.invalidArgument(
                "cross_attention_mask of \(samples.count)×\(s)×\(iMax)×\(t) is over "
                    + "\(Self.maxMaskElements) elements")
        }
        var out = MllamaTextBatch(
            batchSize: samples.count, sequenceLength: s, maxImages: iMax, maxTiles: t, inputIds: [], attentionMask: [],
            crossAttentionMask: [Int64](repeating: 0, count: samples.count * s * iMax * t), labels: [])
        for (b, ids) in samples.enumerated() {
            let pad = s - ids.count
            let padIds = [Int](repeating: padTokenId, count: pad)
            let padded = paddingSide == .right ? ids + padIds : padIds + ids
            let real = [Int64](repeating: 1, count: ids.count)
            let zeros = [Int64](repeating: 0, count: pad)
            out.inputIds += padded.map { Int64($0) }
            out.attentionMask += paddingSide == .right ? real + zeros : zeros + real
            if let labels {
                let l = labels[b].map { Int64($0) }
                let ignored = [Int64](repeating: Int64(Labels.ignoreIndex), count: pad)
                out.labels += paddingSide == .right ? l + ignored : ignored + l
            }
            let ranges = imageRanges(padded)
            guard ranges.count == numTiles[b].count else {
                throw LoRANASError.invalidArgument(
                    "sample \(b): \(ranges.count) \(ChatFormat.imageToken) ids but \(numTiles[b].count) images")
            }
            for (j, r) in ranges.enumerated() {
                for pos in r {
                    let base = ((b * s + pos) * iMax + j) * t
                    for tile in 0..<numTiles[b][j] { out.crossAttentionMask[base + tile] = 1 }
                }
            }
        }
        return out
    }

    /// The positions each image is visible from (§2.2): image j from its token up to the next image token, or to
    /// the end for the last; a run of consecutive image tokens shares the range of the group that follows it.
    public func imageRanges(_ ids: [Int]) -> [Range<Int>] {
        Self.imageRanges(ids, imageTokenId: imageTokenId)
    }

    /// ``imageRanges(_:)`` for `<|image|>` = `imageTokenId`.
    public static func imageRanges(_ ids: [Int], imageTokenId: Int) -> [Range<Int>] {
        let positions = ids.indices.filter { ids[$0] == imageTokenId }
        guard !positions.isEmpty else { return [] }
        var ranges: [Range<Int>] = []
        for (j, p) in positions.enumerated() {
            ranges.append(p..<(j + 1 < positions.count ? positions[j + 1] : ids.count))
        }
        var end = ids.count
        for j in stride(from: ranges.count - 1, through: 0, by: -1) {
            if ranges[j].upperBound == ranges[j].lowerBound + 1 { ranges[j] = ranges[j].lowerBound..<end }
            end = ranges[j].upperBound
        }
        return ranges
    }
}
