import Foundation

/// Turning Cauldron records into encoded samples, in file order, several records at a time on the engine's
/// threads (decoding and resizing images dominate). The result does not depend on the thread count.
public struct CauldronEncoder: Sendable {
    /// The processor that renders, tokenizes and resizes.
    public let processor: MllamaProcessor
    /// The token count samples are cut to (nil: none).
    public let maxLength: Int?

    /// Records encoded per parallel round.
    static let roundSize = 64

    /// An encoder; `maxLength` must be at least 1 when given.
    public init(processor: MllamaProcessor, maxLength: Int?) throws {
        if let maxLength { try require(maxLength >= 1, "max_length must be at least 1, got \(maxLength)") }
        self.processor = processor
        self.maxLength = maxLength
    }

    /// The encoding its samples carry; `source` names where they came from, `modelConfig` is the model's
    /// config.json text.
    public func encoding(source: String, modelConfig: String) -> DatasetEncoding {
        DatasetEncoding(processor: processor, maxLength: maxLength, source: source, modelConfig: modelConfig)
    }

    /// One record and its images; nil when truncation skips it.
    public func encode(_ record: CauldronRecord, images: [RGBImage]) throws -> EncodedSample? {
        try processor.encode(record: record, images: images, maxLength: maxLength)
    }

    /// Encodes every record of `file`, calling `sink` with each kept sample in file order; returns the number
    /// of records skipped by truncation. Errors name the file and line.
    public func encode(file: CauldronFile, into sink: (EncodedSample) throws -> Void) throws -> Int {
        var skipped = 0
        var pending: [Line] = []
        try file.forEachLine { number, bytes in
            pending.append(Line(number: number, bytes: bytes))
            if pending.count == Self.roundSize {
                skipped += try deliver(pending, file: file, to: sink)
                pending.removeAll(keepingCapacity: true)
            }
        }
        return skipped + (try deliver(pending, file: file, to: sink))
    }

    /// One line of a JSONL file.
    struct Line {
        var number: Int
        var bytes: ArraySlice<UInt8>
    }

    /// Encodes `lines` in parallel and hands their samples to `sink` in order; returns how many were skipped.
    private func deliver(_ lines: [Line], file: CauldronFile, to sink: (EncodedSample) throws -> Void) throws -> Int {
        var skipped = 0
        for (line, result) in zip(lines, encodeRound(lines, file: file)) {
            switch result {
            case .blank: continue
            case .skipped: skipped += 1
            case .sample(let sample): try file.located(line: line.number) { try sink(sample) }
            case .failed(let error): throw error
            }
        }
        return skipped
    }

    /// What each line becomes; each parallel chunk writes only its own slot.
    private func encodeRound(_ lines: [Line], file: CauldronFile) -> [LineResult] {
        var results = [LineResult](repeating: .blank, count: lines.count)
        results.withUnsafeMutableBufferPointer { slots in
            Engine.parallelFor(lines.count) { i in slots[i] = encodeLine(lines[i], file: file) }
        }
        return results
    }

    private func encodeLine(_ line: Line, file: CauldronFile) -> LineResult {
        do {
            guard let entry = try file.entry(line.bytes, line: line.number) else { return .blank }
            let sample = try file.located(line: line.number) { try encode(entry.record, images: entry.images) }
            return sample.map(LineResult.sample) ?? .skipped
        } catch {
            return .failed(error)
        }
    }
}

/// What one line of a JSONL file became.
enum LineResult {
    case blank
    case skipped
    case sample(EncodedSample)
    case failed(Error)

}

/// A model directory's config.json: parsed, and its text (which packs record).
public struct ModelConfigFile: Sendable {
    /// The parsed config.
    public let config: MllamaConfig
    /// The file's text.
    public let text: String

    /// Reads `directory`/config.json.
    public init(directory: URL) throws {
        let path = directory.appendingPathComponent("config.json").path
        do {
            try self.init(text: String(decoding: try Files.read(path), as: UTF8.self))
        } catch let e as LoRANASError {
            guard case .format = e else { throw e }
            throw e.prefixed("\(path): ")
        }
    }

    /// A config from its text (a pack's `model_config`); duplicate keys allowed, the last one winning, as in
    /// Python's json and so transformers.
    public init(text: String) throws {
        self.text = text
        config = try MllamaConfig(json: try JSON.parse(Data(text.utf8), rejectDuplicateKeys: false))
        try config.validate()
    }
}

extension Dataset {
    /// The records of a Cauldron JSONL file, encoded by `processor` and held in memory (images as uint8
    /// canvases), checked against `model`'s config. An empty result is an error.
    public static func cauldron(file: CauldronFile, processor: MllamaProcessor, model: ModelConfigFile,
                                maxLength: Int? = nil) throws -> Dataset
    {
        let encoder = try CauldronEncoder(processor: processor, maxLength: maxLength)
        let encoding = encoder.encoding(source: (file.path as NSString).lastPathComponent, modelConfig: model.text)
        let dataset = Dataset(config: model.config)
        let skipped = try encoder.encode(file: file) { try dataset.append($0, encoding: encoding) }
        try dataset.addSkipped(skipped)
        guard dataset.count > 0 else {
            throw LoRANASError.invalidArgument("\(file.path) gives an empty dataset (\(skipped) records skipped by "
                                                   + "max_length)")
        }
        return dataset
    }
}
