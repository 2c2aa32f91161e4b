import Foundation

/// How a dataset's encoded samples were made: what turns them into floats, and what a pack records about them.
public struct DatasetEncoding: Sendable {
    /// Normalizes canvases and rebuilds cross-attention masks.
    public var decoder: MllamaSampleDecoder
    /// The tokenizer's vocabulary size.
    public var vocabSize: Int
    /// The processor's pad id.
    public var padTokenId: Int
    /// The processor's BOS and EOS tokens.
    public var bosToken: String
    public var eosToken: String
    /// The `max_length` samples were cut to (nil: none).
    public var maxLength: Int?
    /// Where the samples came from (a file name, never a path).
    public var source: String
    /// The model's config.json text the samples were checked against.
    public var modelConfig: String

    /// The encoding of `processor`'s samples for the model whose config.json text is `modelConfig`.
    public init(processor: MllamaProcessor, maxLength: Int?, source: String, modelConfig: String) {
        decoder = processor.sampleDecoder
        vocabSize = processor.tokenizer.vocabSize
        padTokenId = processor.text.padTokenId
        bosToken = processor.tokenizerSettings.bosToken
        eosToken = processor.tokenizerSettings.eosToken
        self.maxLength = maxLength
        self.source = source
        self.modelConfig = modelConfig
    }

    /// The encoding a pack records.
    init(pack m: PackMetadata) throws {
        decoder = MllamaSampleDecoder(image: try MllamaImageProcessor(settings: m.imageSettings),
                                      imageTokenId: m.imageTokenId)
        vocabSize = m.vocabSize
        padTokenId = m.padTokenId ?? 0
        bosToken = m.bosToken
        eosToken = m.eosToken
        maxLength = m.maxLength
        source = m.source
        modelConfig = m.modelConfig
    }

    /// The metadata of a pack of these samples.
    var packMetadata: PackMetadata {
        PackMetadata(imageSettings: decoder.image.settings, imageTokenId: decoder.imageTokenId, padTokenId: padTokenId,
                     vocabSize: vocabSize, bosToken: bosToken, eosToken: eosToken, maxLength: maxLength,
                     source: source, modelConfig: modelConfig)
    }
}

/// Samples checked against one model config, with the collation that pads them into batches. The samples live
/// in memory (float samples, or encoded ones whose images stay uint8 canvases until a batch needs them) or in a
/// pack that is streamed from disk; a dataset can also be a view of another one's samples (``split``).
public final class Dataset: @unchecked Sendable {
    public let config: MllamaConfig
    /// The config.json text of the model, when the dataset was made from a model directory (packs record it).
    public let modelConfigText: String?
    private let store: SampleStore
    /// The store's samples this dataset holds, in order (nil: all of them).
    private let view: [Int]?

    /// An empty in-memory dataset.
    public init(config: MllamaConfig) {
        self.config = config
        modelConfigText = nil
        store = MemorySamples()
        view = nil
    }

    /// An empty in-memory dataset for the model of a config.json file.
    public init(model: ModelConfigFile) {
        config = model.config
        modelConfigText = model.text
        store = MemorySamples()
        view = nil
    }

    init(config: MllamaConfig, modelConfigText: String?, store: SampleStore, view: [Int]?) {
        self.config = config
        self.modelConfigText = modelConfigText
        self.store = store
        self.view = view
    }

    /// The number of samples.
    public var count: Int { view?.count ?? store.count }

    /// Samples dropped when the dataset was made (truncation would have cut an image or every answer).
    public var skipped: Int { store.skipped }

    /// How the encoded samples were made (nil for a dataset of float samples only).
    public var encoding: DatasetEncoding? { store.encoding }

    /// Sample `i`'s token count.
    public func length(_ i: Int) throws -> Int { try store.length(storeIndex(i)) }

    /// Sample `i` as floats, as the processor makes it.
    public func sample(_ i: Int) throws -> Sample { try store.sample(storeIndex(i)) }

    /// A hash of the token ids and labels of up to 16 evenly spaced samples: cheap, and enough to tell
    /// runs (or the ranks of one run) given other data apart.
    func contentFingerprint() throws -> String {
        var h = Hasher64()
        let n = min(count, 16)
        for k in 0..<n {
            let s = try sample(k * count / n)
            for t in s.inputIds { h.combine(UInt64(bitPattern: Int64(t))) }
            for t in s.labels ?? [] { h.combine(UInt64(bitPattern: Int64(t))) }
            h.combine(UInt64.max)
        }
        return String(h.value, radix: 16)
    }

    /// Sample `i` encoded (uint8 canvases), when the dataset holds encoded samples.
    public func encoded(_ i: Int) throws -> EncodedSample { try store.encoded(storeIndex(i)) }

    private func storeIndex(_ i: Int) throws -> Int {
        try require(i >= 0 && i < count, "sample index \(i) is outside 0..<\(count)")
        return view?[i] ?? i
    }

    /// Adds a float sample after checking its shapes and values against the model.
    /// A sample must have a target: a label other than -100 after the first position (position
    /// j predicts label j + 1, so the first label is never a target). A sample without one would
    /// make a batch of its own with no loss, and stop every run that draws it.
    public func append(_ s: Sample) throws {
        try memory().append(.sample(try checked(s)))
    }

    /// Adds an encoded sample made with `encoding` (every encoded sample of a dataset shares one).
    public func append(_ e: EncodedSample, encoding: DatasetEncoding) throws {
        let store = try memory()
        try validate(e, encoding: encoding)
        try store.append(.encoded(e), encoding: encoding)
    }

    /// Checks an encoded sample as ``append(_:encoding:)`` does, without adding it; errors call it sample `index`
    /// (default: the next index).
    public func validate(_ e: EncodedSample, encoding: DatasetEncoding, index: Int? = nil) throws {
        try checked(try encoding.decoder.sample(e), index: index)
    }

    /// Counts samples the caller dropped while making the dataset.
    public func addSkipped(_ n: Int) throws { try memory().addSkipped(n) }

    private func memory() throws -> MemorySamples {
        guard view == nil, let m = store as? MemorySamples else {
            throw LoRANASError.invalidArgument("samples can only be added to an in-memory dataset, not to a pack "
                                                   + "or a split")
        }
        return m
    }

    @discardableResult
    private func checked(_ s: Sample, index: Int? = nil) throws -> Sample {
        let index = index ?? count
        guard let labels = s.labels else { throw LoRANASError.invalidArgument("sample \(index) has no labels") }
        try s.asBatch.validate(for: config)
        guard labels.dropFirst().contains(where: { $0 != CrossEntropy.ignoreIndex }) else {
            throw LoRANASError.invalidArgument(
                "sample \(index) has no target tokens: every label after the first is -100, so it cannot train or "
                    + "be evaluated; drop it or label its answer")
        }
        return s
    }

    /// Pads `indices`' samples into one batch (``Collation``).
    public func batch(_ indices: [Int]) throws -> MllamaBatch {
        Collation.batch(try indices.map(sample), config: config)
    }

    /// Splits off a validation set: `fraction` of the samples, chosen by a seeded shuffle. Both parts are
    /// views of this dataset's samples (nothing is copied).
    public func split(validationFraction fraction: Double, seed: UInt64) throws -> (train: Dataset, validation: Dataset)
    {
        try require(fraction > 0 && fraction < 1, "validation fraction must be in (0, 1)")
        var rng = SplitMix64(seed: seed)
        let order = try rng.permutation(count).map(storeIndex)
        let nVal = max(1, Int((Double(count) * fraction).rounded()))
        try require(nVal < count, "not enough samples to split")
        return (Dataset(config: config, modelConfigText: modelConfigText, store: store, view: Array(order[nVal...])),
                Dataset(config: config, modelConfigText: modelConfigText, store: store, view: Array(order[..<nVal])))
    }
}

/// Where a dataset's samples live.
protocol SampleStore: AnyObject, Sendable {
    var count: Int { get }
    var skipped: Int { get }
    var encoding: DatasetEncoding? { get }
    func length(_ i: Int) throws -> Int
    func sample(_ i: Int) throws -> Sample
    func encoded(_ i: Int) throws -> EncodedSample
}

/// Samples in memory: float samples as given, encoded ones with their canvases.
final class MemorySamples: SampleStore, @unchecked Sendable {
    enum Item {
        case sample(Sample)
        case encoded(EncodedSample)
    }

    private var items: [Item] = []
    private var skippedCount = 0
    private var sharedEncoding: DatasetEncoding?
    private let lock = NSLock()

    var count: Int { lock.withLock { items.count } }
    var skipped: Int { lock.withLock { skippedCount } }
    var encoding: DatasetEncoding? { lock.withLock { sharedEncoding } }

    func append(_ item: Item, encoding: DatasetEncoding? = nil) throws {
        try lock.withLock {
            if let encoding {
                if let shared = sharedEncoding {
                    try require(shared.decoder.image.settings == encoding.decoder.image.settings
                                    && shared.decoder.imageTokenId == encoding.decoder.imageTokenId,
                                "an encoded sample made with other processor settings than the dataset's")
                } else {
                    sharedEncoding = encoding
                }
            }
            items.append(item)
        }
    }

    func addSkipped(_ n: Int) throws {
        try require(n >= 0, "a skipped count cannot be negative")
        lock.withLock { skippedCount += n }
    }

    private func item(_ i: Int) -> Item { lock.withLock { items[i] } }

    func length(_ i: Int) throws -> Int {
        switch item(i) {
        case .sample(let s): return s.length
        case .encoded(let e): return e.length
        }
    }

    func sample(_ i: Int) throws -> Sample {
        switch item(i) {
        case .sample(let s): return s
        case .encoded(let e):
            guard let decoder = encoding?.decoder else {
                throw LoRANASError.format("an encoded sample without settings")
            }
            return try decoder.sample(e)
        }
    }

    func encoded(_ i: Int) throws -> EncodedSample {
        guard case .encoded(let e) = item(i) else {
            throw LoRANASError.invalidArgument("sample \(i) was added as arrays; only encoded samples are kept encoded")
        }
        return e
    }
}
