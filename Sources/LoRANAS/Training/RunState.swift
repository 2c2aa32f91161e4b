import Foundation

/// A run's saved state (not model weights): `state.safetensors` in the run's directory, holding
/// the trainable tensors, optimizer moments and histories, and a JSON "loranas_state" entry in
/// the metadata (kind, fingerprint, loop position). Written to a temporary file and renamed.
enum RunState {
    static let fileName = "state.safetensors"

    static func path(_ dir: String) -> String { dir + "/" + fileName }

    static func save(dir: String, tensors: [(String, Tensor)], state: JSON) throws {
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw LoRANASError.fileSystem("cannot create the checkpoint directory \(dir)", error)
        }
        try SafeTensorsWriter.write(
            tensors.map { ($0.0, .f32($0.1)) },
            metadata: ["loranas_state": state.serialized], to: path(dir))
    }

    /// A saved run that matches `kind` and `fingerprint`, or nil when the directory holds none.
    /// A run state of another run is an error: resuming it would silently mix two runs.
    static func resume(dir: String, kind: String, fingerprint: String) throws -> Saved? {
        guard let saved = try load(dir: dir) else { return nil }
        guard saved.state["kind"]?.string == kind, saved.state["fingerprint"]?.string == fingerprint else {
            throw LoRANASError.invalidArgument(
                "\(dir) holds a checkpoint of a different run (other options, data or "
                    + "base weights); use another checkpoint_dir, or the same options, data and model")
        }
        return saved
    }

    /// The run state in `dir` with its position parsed, or nil when there is none; a file that is
    /// not a run state is a format error.
    static func load(dir: String) throws -> Saved? {
        guard FileManager.default.fileExists(atPath: path(dir)) else { return nil }
        let file = try SafeTensorsFile(path: path(dir))
        guard let text = file.metadata["loranas_state"] else {
            throw LoRANASError.format("\(path(dir)) has no loranas_state")
        }
        let state: JSON
        do { state = try JSON.parse(text) } catch { throw LoRANASError.format("\(path(dir)): loranas_state: \(error)") }
        guard let loop = state["loop"] else { throw LoRANASError.format("\(path(dir)): loranas_state has no loop") }
        return Saved(file: file, state: state, loop: try LoopState(json: loop))
    }

    /// What `resume` found.
    struct Saved {
        let file: SafeTensorsFile
        let state: JSON
        let loop: LoopState

        /// A non-negative integer entry of the state.
        func count(_ key: String) throws -> Int {
            guard let v = state[key]?.int, v >= 0 else { throw LoRANASError.format("run state: \(key) is missing") }
            return v
        }

        /// Copies saved tensor `name` into `into` after checking its shape and values.
        func restore(_ name: String, into: Tensor) throws {
            let t = try file.tensor(name)
            guard t.shape == into.shape else {
                throw LoRANASError.format("run state: \(name) has shape \(t.shape), expected \(into.shape)")
            }
            guard t.isFinite else { throw LoRANASError.format("run state: \(name) holds NaN or infinite values") }
            into.copy(from: t)
        }

        /// A 1-D tensor as an array, checked to hold `count` finite values.
        func floats(_ name: String, count: Int) throws -> [Float] {
            let t = try file.tensor(name)
            guard t.shape == [count], t.isFinite else {
                throw LoRANASError.format("run state: \(name) has shape \(t.shape), expected [\(count)] finite values")
            }
            return t.array
        }
    }
}

extension MllamaModel {
    /// A cheap fingerprint of the base weights (shapes and a strided sample of every tensor),
    /// so that a run state is never resumed onto another model with the same config.
    var weightsFingerprint: String {
        var h = Hasher64()
        let packed = packedWeights
        for e in params.entries {
            let count = e.shape.reduce(1, *)
            h.combine(e.name)
            for d in e.shape { h.combine(UInt64(d)) }
            let stride = max(1, count / 256)
            var i = 0
            while i < count {
                h.combine(UInt64(parameterValue(e.name, i, packed: packed).bitPattern))
                i += stride
            }
        }
        return String(h.value, radix: 16)
    }
}

/// FNV-1a, 64-bit: a stable hash (Swift's Hasher is seeded per process).
struct Hasher64 {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func combine(_ x: UInt64) {
        var v = x
        for _ in 0..<8 {
            value = (value ^ (v & 0xff)) &* 0x100_0000_01b3
            v >>= 8
        }
    }

    mutating func combine(_ s: String) {
        for b in s.utf8 { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 }
        combine(UInt64(0xff))
    }
}

/// A run whose state can be saved and resumed (search, fine-tune).
protocol ResumableRun: AnyObject {
    /// "search" or "finetune": a run state of another kind is never resumed.
    static var kind: String { get }
    func save(dir: String, state: LoopState, fingerprint: String) throws
    func restore(_ saved: RunState.Saved) throws
}

extension ResumableRun {
    /// Where the loop starts: the saved position when the checkpoint directory holds this run
    /// (its tensors restored), else the beginning.
    func startingState(_ settings: some RunSettings, order: BatchOrder, fingerprint: String) throws -> LoopState {
        try World.current().requireSame(fingerprint, "options and data")
        guard let dir = settings.checkpointDir,
            let saved = try RunState.resume(dir: dir, kind: Self.kind, fingerprint: fingerprint)
        else { return LoopState() }
        try saved.loop.check(epochs: settings.epochs, stepsPerEpoch: order.batchesPerPass)
        try restore(saved)
        var state = saved.loop
        state.trainLosses = try saved.floats("train_losses", count: state.globalStep)
        return state
    }

    /// The loop's `save`: rank 0 writes a run state when a checkpoint directory is set (the ranks hold
    /// the same state); the others wait for it.
    func saver(_ settings: some RunSettings, fingerprint: String) -> (LoopState) throws -> Void {
        let dir = settings.checkpointDir
        return { state in
            guard let dir else { return }
            try World.current().onRankZero { try self.save(dir: dir, state: state, fingerprint: fingerprint) }
        }
    }
}
