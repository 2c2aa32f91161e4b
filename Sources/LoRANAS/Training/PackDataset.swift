import Foundation

/// Samples streamed from a pack: each is read (and its CRC checked) when a batch needs it, so memory stays
/// flat whatever the pack's size.
final class PackSamples: SampleStore, @unchecked Sendable {
    let reader: PackReader
    let encoding: DatasetEncoding?

    init(reader: PackReader) throws {
        self.reader = reader
        encoding = try DatasetEncoding(pack: reader.metadata)
    }

    var count: Int { reader.count }
    var skipped: Int { reader.metadata.skippedCount }
    func length(_ i: Int) throws -> Int { reader.length(i) }
    func encoded(_ i: Int) throws -> EncodedSample { try reader.sample(i) }

    func sample(_ i: Int) throws -> Sample {
        guard let decoder = encoding?.decoder else { throw LoRANASError.format("a pack without settings") }
        return try decoder.sample(try reader.sample(i))
    }
}

extension Dataset {
    /// A pack as a dataset, streamed from disk. Its samples are checked against `config` (default: the
    /// config.json the pack records): tile size and count, `<|image|>` id and vocabulary.
    public static func load(pack path: String, config: MllamaConfig? = nil) throws -> Dataset {
        let reader = try PackReader(path: path)
        let m = reader.metadata
        guard let config = try config ?? (m.modelConfig.isEmpty ? nil : ModelConfigFile(text: m.modelConfig).config)
        else {
            throw LoRANASError.invalidArgument("\(path) does not record its model's config.json; give the model")
        }
        try checkPack(m, against: config, path: path)
        return Dataset(config: config, modelConfigText: m.modelConfig.isEmpty ? nil : m.modelConfig,
                       store: try PackSamples(reader: reader), view: nil)
    }

    private static func checkPack(_ m: PackMetadata, against config: MllamaConfig, path: String) throws {
        let v = config.vision
        try require(m.imageSettings.tileSize == v.imageSize && m.imageSettings.maxImageTiles == v.maxNumTiles,
                    "\(path) holds \(m.imageSettings.maxImageTiles) tiles of \(m.imageSettings.tileSize) pixels; "
                        + "the model takes \(v.maxNumTiles) tiles of \(v.imageSize)")
        try require(m.imageTokenId == config.imageTokenIndex,
                    "\(path) marks images with id \(m.imageTokenId); the model's image_token_index is "
                        + "\(config.imageTokenIndex)")
        try require(m.vocabSize <= config.text.embeddingRows,
                    "\(path) has a vocabulary of \(m.vocabSize) tokens; the model embeds \(config.text.embeddingRows)")
    }

    /// Writes the dataset's encoded samples as a pack at `path` (a temporary file renamed into place).
    public func save(pack path: String) throws {
        try World.current().onRankZero { try writePack(path) }
    }

    private func writePack(_ path: String) throws {
        guard let encoding else {
            throw LoRANASError.invalidArgument("only a dataset made from records (or a pack) can be saved as a pack; "
                                                   + "this one holds arrays")
        }
        let writer = try PackWriter(path: path, metadata: encoding.packMetadata)
        for i in 0..<count { try writer.append(try encoded(i)) }
        try writer.finish(skipped: skipped)
    }
}

extension CauldronEncoder {
    /// Streams the records of `file` into a pack at `path` without holding them: byte for byte the pack that
    /// `Dataset.cauldron(file:processor:model:maxLength:)` followed by `save(pack:)` writes. Returns the
    /// number of samples written and of records skipped.
    public func pack(file: CauldronFile, model: ModelConfigFile, to path: String) throws
        -> (samples: Int, skipped: Int)
    {
        let encoding = encoding(source: (file.path as NSString).lastPathComponent, modelConfig: model.text)
        let writer = try PackWriter(path: path, metadata: encoding.packMetadata)
        let check = Dataset(config: model.config)
        var written = 0
        let skipped = try encode(file: file) { sample in
            try check.validate(sample, encoding: encoding, index: written)
            try writer.append(sample)
            written += 1
        }
        guard written > 0 else {
            throw LoRANASError.invalidArgument("\(file.path) gives an empty dataset (\(skipped) records skipped by "
                                                   + "max_length)")
        }
        try writer.finish(skipped: skipped)
        return (written, skipped)
    }
}
