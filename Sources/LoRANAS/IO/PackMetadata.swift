import Foundation

/// What a pack says about itself: the settings a reader checks the pack against a model with and turns its
/// samples into floats with, and how it was made. Stored as the pack's JSON metadata block (keys sorted, no
/// timestamps or paths, so identical inputs give identical packs).
public struct PackMetadata: Sendable, Equatable {
    /// The pack format version (`format_version`), 1.
    public var formatVersion: Int
    /// The image processor settings the canvases were made with and are normalized with (`image_processor`:
    /// `tile_size`, `max_image_tiles`, `image_mean`, `image_std`, `rescale_factor`).
    public var imageSettings: MllamaImageProcessorSettings
    /// The id of `<|image|>` (`image_token_id`).
    public var imageTokenId: Int
    /// The id batches are padded with (`pad_token_id`), nil when the model has none.
    public var padTokenId: Int?
    /// The tokenizer's vocabulary size, added tokens included (`vocab_size`); every id is below it.
    public var vocabSize: Int
    /// The tokenizer's BOS token (`bos_token`).
    public var bosToken: String
    /// The tokenizer's EOS token (`eos_token`).
    public var eosToken: String
    /// The number of samples (`sample_count`); ``PackWriter/finish(skipped:)`` sets it.
    public var sampleCount: Int
    /// The samples dropped because truncation would cut an image token or every answer (`skipped_count`);
    /// ``PackWriter/finish(skipped:)`` sets it.
    public var skippedCount: Int
    /// The length samples were cut to (`max_length`), nil when they were not cut.
    public var maxLength: Int?
    /// Free-form provenance (`source`), e.g. the JSONL file's name. Not a path: packs must not depend on where
    /// their inputs were.
    public var source: String
    /// The model's config.json text the samples were checked against (`model_config`), so that a pack opens as
    /// a dataset of its model without the model; empty when the writer had none.
    public var modelConfig: String

    /// Metadata for a new pack; the writer fills in the counts when it finishes.
    public init(imageSettings: MllamaImageProcessorSettings, imageTokenId: Int, padTokenId: Int?, vocabSize: Int,
                bosToken: String, eosToken: String, maxLength: Int?, source: String,
                sampleCount: Int = 0, skippedCount: Int = 0, modelConfig: String = "")
    {
        formatVersion = Int(PackFormat.version)
        self.imageSettings = imageSettings
        self.imageTokenId = imageTokenId
        self.padTokenId = padTokenId
        self.vocabSize = vocabSize
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.sampleCount = sampleCount
        self.skippedCount = skippedCount
        self.maxLength = maxLength
        self.source = source
        self.modelConfig = modelConfig
    }

    /// What is wrong with these values, nil when nothing is.
    func problem() -> String? {
        do {
            try imageSettings.validate()
        } catch {
            return "image_processor: \((error as? LoRANASError).map(Self.message) ?? "\(error)")"
        }
        guard formatVersion == Int(PackFormat.version) else { return "format_version \(formatVersion) is not 1" }
        guard vocabSize >= 1 && vocabSize <= Int(Int32.max) else { return "vocab_size \(vocabSize) is out of range" }
        guard (0..<vocabSize).contains(imageTokenId) else {
            return "image_token_id \(imageTokenId) is outside 0..<\(vocabSize)"
        }
        if let pad = padTokenId, !(0..<vocabSize).contains(pad) {
            return "pad_token_id \(pad) is outside 0..<\(vocabSize)"
        }
        guard sampleCount >= 0, skippedCount >= 0 else { return "negative sample or skipped count" }
        if let m = maxLength, m < 1 { return "max_length \(m) is not positive" }
        return nil
    }

    static func message(_ e: LoRANASError) -> String {
        switch e {
        case .invalidArgument(let m), .io(let m), .format(let m), .notFound(let m), .numeric(let m),
             .unsupported(let m):
            return m
        }
    }
}

// MARK: - Samples

extension PackMetadata {
    /// What makes `sample` unfit for a pack with this metadata, nil when nothing does: ids and labels of equal
    /// count (at least one), ids in 0..<vocab_size, each label −100 or the id at its position (labels are not
    /// shifted, see ``Labels``), one image per `<|image|>` token, at most 2^16 images, and canvases of the
    /// metadata's tile size and tile arrangements.
    func problem(with sample: EncodedSample) -> String? {
        let ids = sample.inputIds
        guard !ids.isEmpty, ids.count <= PackFormat.maxTokens else { return "has \(ids.count) tokens" }
        guard sample.labels.count == ids.count else {
            return "has \(sample.labels.count) labels for \(ids.count) tokens"
        }
        var imageTokens = 0
        for (k, id) in ids.enumerated() {
            guard id >= 0 && Int(id) < vocabSize else { return "has token id \(id) at \(k), outside 0..<\(vocabSize)" }
            let label = sample.labels[k]
            guard label == Int32(Labels.ignoreIndex) || label == id else {
                return "has label \(label) at \(k), neither -100 nor the token id \(id)"
            }
            if Int(id) == imageTokenId { imageTokens += 1 }
        }
        guard sample.images.count <= PackFormat.maxImages else { return "has \(sample.images.count) images" }
        guard imageTokens == sample.images.count else {
            return "has \(imageTokens) <|image|> tokens but \(sample.images.count) images"
        }
        for (j, canvas) in sample.images.enumerated() {
            if let p = canvasProblem(canvas) { return "image \(j): \(p)" }
        }
        return nil
    }

    private func canvasProblem(_ c: MllamaCanvasImage) -> String? {
        guard c.tileSize == imageSettings.tileSize else {
            return "tile size \(c.tileSize), the pack's is \(imageSettings.tileSize)"
        }
        let options = MllamaCanvas.arrangements(maxTiles: imageSettings.maxImageTiles)
        guard c.aspectRatioId >= 1, c.aspectRatioId <= options.count,
              options[c.aspectRatioId - 1] == (c.rows, c.cols)
        else { return "\(c.rows)×\(c.cols) tiles with aspect ratio id \(c.aspectRatioId) do not fit "
            + "max_image_tiles \(imageSettings.maxImageTiles)" }
        return nil
    }
}

// MARK: - JSON

extension PackMetadata {
    /// The metadata as JSON, keys sorted.
    var json: JSON {
        let s = imageSettings
        let image: [(String, JSON)] = [
            ("image_mean", .array(s.imageMean.map(JSON.number))),
            ("image_std", .array(s.imageStd.map(JSON.number))),
            ("max_image_tiles", .number(Double(s.maxImageTiles))),
            ("rescale_factor", .number(s.rescaleFactor)),
            ("tile_size", .number(Double(s.tileSize))),
        ]
        let fields: [(String, JSON)] = [
            ("bos_token", .string(bosToken)),
            ("eos_token", .string(eosToken)),
            ("format_version", .number(Double(formatVersion))),
            ("image_processor", .object(image)),
            ("image_token_id", .number(Double(imageTokenId))),
            ("max_length", maxLength.map { .number(Double($0)) } ?? .null),
            ("model_config", .string(modelConfig)),
            ("pad_token_id", padTokenId.map { .number(Double($0)) } ?? .null),
            ("sample_count", .number(Double(sampleCount))),
            ("skipped_count", .number(Double(skippedCount))),
            ("source", .string(source)),
            ("vocab_size", .number(Double(vocabSize))),
        ]
        return .object(fields.sorted { $0.0 < $1.0 })
    }

    /// The metadata of a pack's JSON block; unknown or missing keys are errors (`.format`).
    init(json: JSON) throws {
        let r = try MetadataReader(json, section: "metadata")
        let image = try MetadataReader(r.value("image_processor"), section: "metadata.image_processor")
        let settings = MllamaImageProcessorSettings(
            tileSize: try image.int("tile_size"), maxImageTiles: try image.int("max_image_tiles"),
            imageMean: try image.numbers("image_mean"), imageStd: try image.numbers("image_std"),
            rescaleFactor: try image.number("rescale_factor"))
        try image.requireOnly(["tile_size", "max_image_tiles", "image_mean", "image_std", "rescale_factor"])
        self.init(imageSettings: settings, imageTokenId: try r.int("image_token_id"),
                  padTokenId: try r.optionalInt("pad_token_id"), vocabSize: try r.int("vocab_size"),
                  bosToken: try r.string("bos_token"), eosToken: try r.string("eos_token"),
                  maxLength: try r.optionalInt("max_length"), source: try r.string("source"),
                  sampleCount: try r.int("sample_count"), skippedCount: try r.int("skipped_count"),
                  modelConfig: try r.string("model_config"))
        formatVersion = try r.int("format_version")
        try r.requireOnly(Self.keys)
    }

    /// The top-level keys of version 1.
    static let keys: Set<String> = [
        "bos_token", "eos_token", "format_version", "image_processor", "image_token_id", "max_length",
        "model_config", "pad_token_id", "sample_count", "skipped_count", "source", "vocab_size",
    ]
}

/// Typed lookups in a metadata object; every failure is a `.format` error naming the key.
private struct MetadataReader {
    let fields: [(String, JSON)]
    let section: String

    init(_ json: JSON?, section: String) throws {
        guard let fields = json?.object else { throw LoRANASError.format("\(section) must be a JSON object") }
        self.fields = fields
        self.section = section
    }

    func value(_ key: String) throws -> JSON {
        guard let v = fields.last(where: { $0.0 == key })?.1 else {
            throw LoRANASError.format("\(section) has no \(key)")
        }
        return v
    }

    func int(_ key: String) throws -> Int {
        guard let i = try value(key).int else { throw LoRANASError.format("\(section).\(key) must be an integer") }
        return i
    }

    func optionalInt(_ key: String) throws -> Int? {
        let v = try value(key)
        if v.isNull { return nil }
        guard let i = v.int else { throw LoRANASError.format("\(section).\(key) must be an integer or null") }
        return i
    }

    func number(_ key: String) throws -> Double {
        guard let d = try value(key).double else { throw LoRANASError.format("\(section).\(key) must be a number") }
        return d
    }

    func numbers(_ key: String) throws -> [Double] {
        let a = try value(key).array ?? []
        let ds = a.compactMap(\.double)
        guard ds.count == 3, a.count == 3 else { throw LoRANASError.format("\(section).\(key) must be 3 numbers") }
        return ds
    }

    func string(_ key: String) throws -> String {
        guard let s = try value(key).string else { throw LoRANASError.format("\(section).\(key) must be a string") }
        return s
    }

    /// Throws when the object has a key outside `known`.
    func requireOnly(_ known: Set<String>) throws {
        if let extra = fields.first(where: { !known.contains($0.0) }) {
            throw LoRANASError.format("\(section) has an unknown key \(extra.0)")
        }
    }
}
