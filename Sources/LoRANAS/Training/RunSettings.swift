import Foundation

/// What search and fine-tune options have in common, and the checks they share.
public protocol RunSettings {
    var epochs: Int { get set }
    var batchSize: Int { get set }
    var lr: Float { get set }
    var weightDecay: Float { get set }
    var seed: UInt64 { get set }
    var checkpointDir: String? { get set }
    var checkpointEvery: Int { get set }
    var maxSteps: Int? { get set }
    /// Batches of similar lengths (less padding), still deterministic by seed.
    var groupByLength: Bool { get set }
}

/// Bounds on run settings: large enough for any real run, small enough that counts derived from
/// them (steps, bytes) cannot overflow.
enum RunLimits {
    static let maxEpochs = 1 << 20
    static let maxBatchSize = 1 << 20
    static let maxRank = 1 << 16
}

extension RunSettings {
    /// Checks the shared settings, naming the first that is out of range.
    func validateRun() throws {
        try require(
            epochs > 0 && epochs <= RunLimits.maxEpochs, "epochs must be in 1...\(RunLimits.maxEpochs), got \(epochs)")
        try require(
            batchSize > 0 && batchSize <= RunLimits.maxBatchSize,
            "batch_size must be in 1...\(RunLimits.maxBatchSize), got \(batchSize)")
        try require(lr > 0 && lr.isFinite, "lr must be a positive number, got \(lr)")
        try require(weightDecay >= 0 && weightDecay.isFinite, "weight_decay must be non-negative, got \(weightDecay)")
        try require(checkpointEvery > 0, "checkpoint_every must be positive, got \(checkpointEvery)")
        try require((maxSteps ?? 0) >= 0, "max_steps must be non-negative, got \(maxSteps ?? 0)")
        if let dir = checkpointDir {
            try require(
                !dir.isEmpty && !dir.utf8.contains(0), "checkpoint_dir must be a non-empty path without NUL bytes")
        }
    }

    /// The settings every run's fingerprint holds (a resumed run must match them).
    var runFingerprint: String {
        "\(epochs)|\(batchSize)|\(lr)|\(weightDecay)|\(seed)|\(groupByLength)"
    }
}

/// The settings of runs that train LoRA adapters (search, fine-tune).
public protocol AdapterRunSettings: RunSettings {
    /// lora_alpha (scaling lora_alpha / r); nil: the run's default.
    var loraAlpha: Float? { get set }
}

extension AdapterRunSettings {
    func validateAdapterRun() throws {
        try validateRun()
        try require(
            loraAlpha.map { $0 > 0 && $0.isFinite } ?? true, "lora_alpha must be positive, got \(loraAlpha ?? 0)")
    }

    var adapterRunFingerprint: String { "\(String(describing: loraAlpha))|\(runFingerprint)" }
}

extension MllamaModel {
    /// The checks both jobs make on their data, and the base-weight part of their fingerprint.
    func checkRunData(_ train: Dataset, _ validation: Dataset, job: String) throws -> String {
        try require(train.count > 0 && validation.count > 0, "\(job) needs non-empty train and validation sets")
        try require(train.config == config && validation.config == config,
                    "the datasets were made for another model (their config.json differs)")
        let contents = try train.contentFingerprint() + "|" + validation.contentFingerprint()
        return "\(train.count)|\(validation.count)|\(contents)|\(parameterCount)|\(weightsFingerprint)"
    }
}
