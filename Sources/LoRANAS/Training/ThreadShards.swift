/// Data parallelism across the engine's threads inside one training step.
///
/// With the base frozen, a step splits its batch (this rank's shard of it) into one contiguous part per thread,
/// at most one per sample. Part 0 runs on the model, part i on a replica that shares every weight, packing and
/// adapter parameter value but has its own adapter gradients and forward caches. Each part runs whole on one
/// thread, its kernels serial: a small model's GEMMs (a few MFLOP) lose about a quarter of their work when each is
/// split across cores, and the parts need no synchronization until their gradients are added into the model's,
/// in part order. The split and the sums depend only on the thread count, so a run keeps its bits.
final class ShardReplicas {
    /// The model's adapters and bf16 packings, per linear layer, when the replicas were made.
    let key: [ObjectIdentifier?]
    /// The models of parts 1... (part 0 runs on the model itself).
    let models: [MllamaModel]
    /// Per linear layer: the model's adapter and, per replica, its copy.
    private let adapters: [(model: LinearAdapter, copies: [LinearAdapter])]
    /// A model parameter → its gradient in each replica.
    private let copies: [ObjectIdentifier: [TrainableTensor]]

    /// Shards pay where a layer's GEMMs are small: at the benchmark sizes (LoRA r=64, batch 4, 2 threads) they
    /// took 0.80× the time of a step with split kernels at hidden size 64, 0.90–0.99× at 384 (and 256), and
    /// 0.96–1.10× at 768 (and 512), where the two parts' buffers at once also took 80–110 MiB more memory
    /// (bench/RESULTS.md, "fp32 at tiny").
    static let widestHidden = 384

    /// Whether `config`'s layers are narrow enough for shards to pay.
    static func pay(for config: MllamaConfig) -> Bool {
        max(config.text.hiddenSize, config.vision.hiddenSize) <= widestHidden
    }

    /// Whether `count − 1` copies of the adapters' gradients fit in a quarter of the memory available.
    static func fit(_ model: MllamaModel, count: Int) -> Bool {
        let floats = model.allLinears.reduce(0) { sum, l in
            sum + (l.adapter?.parameters.reduce(0) { $0 + $1.value.count } ?? 0)
        }
        return Double(floats) * 4 * Double(count - 1) <= Memory.availableBytes / 4
    }

    init(of model: MllamaModel, count: Int) {
        key = Self.key(model)
        models = (1..<max(2, count)).map { _ in MllamaModel(sharingWeightsOf: model) }
        var adapters: [(LinearAdapter, [LinearAdapter])] = []
        var copies: [ObjectIdentifier: [TrainableTensor]] = [:]
        let replicaLinears = models.map(\.allLinears)
        for (i, layer) in model.allLinears.enumerated() {
            guard let adapter = layer.adapter else { continue }
            let made = replicaLinears.map { linears in
                let copy = adapter.shardCopy()
                linears[i].adapter = copy
                return copy
            }
            adapters.append((adapter, made))
            for (k, p) in adapter.parameters.enumerated() {
                copies[ObjectIdentifier(p)] = made.map { $0.parameters[k] }
            }
        }
        self.adapters = adapters
        self.copies = copies
    }

    /// What the replicas mirror: each linear layer's adapter and bf16 packing.
    static func key(_ model: MllamaModel) -> [ObjectIdentifier?] {
        model.allLinears.flatMap { l in [l.adapter.map { ObjectIdentifier($0) }, l.bf16.map { ObjectIdentifier($0) }] }
    }

    /// Whether every tensor in `gradients` is an adapter parameter the replicas copy.
    func covers(_ gradients: [TrainableTensor]) -> Bool {
        gradients.allSatisfy { copies[ObjectIdentifier($0)] != nil }
    }

    /// Copies the adapters' training settings to the replicas.
    func prepare() {
        for (adapter, made) in adapters {
            for (k, copy) in made.enumerated() { adapter.copySettings(to: copy, part: k + 1) }
        }
    }

    /// Zeroes the adapter gradients of replica `k` (part k + 1).
    func zeroGradients(ofReplica k: Int) {
        for (_, made) in adapters { for p in made[k].parameters { p.grad.zero() } }
    }

    /// Adds every replica's gradient of each of `gradients` into it, in part order.
    func addGradients(into gradients: [TrainableTensor]) {
        Engine.parallelFor(gradients.count) { i in
            let g = gradients[i]
            for copy in copies[ObjectIdentifier(g)] ?? [] { axpy(1, copy.grad.ptr, g.grad.ptr, g.grad.count) }
        }
    }
}

/// A step's batch as parts, each with the model it runs on.
struct StepShards {
    let parts: [(model: MllamaModel, indices: [Int])]
    let replicas: ShardReplicas?

    /// Runs `body(part)` for every part, on its own thread when there are several; returns the results in part
    /// order, or throws the error of the first part that failed.
    func map<T>(_ body: (Int) throws -> T) throws -> [T] {
        guard parts.count > 1 else { return try parts.indices.map(body) }
        var results = [Result<T, Error>?](repeating: nil, count: parts.count)
        results.withUnsafeMutableBufferPointer { slots in
            Engine.parallelFor(slots.count) { i in slots[i] = Result { try body(i) } }
        }
        return try results.enumerated().map { i, r in
            guard let r else { throw LoRANASError.numeric("part \(i) of the step did not run") }
            return try r.get()
        }
    }

    /// Backward of part `i`'s pass, its loss scaled by its share of the `count` target tokens of the step (a
    /// replica's gradients are zeroed first, on the part's thread).
    func backward(_ i: Int, _ pass: MllamaModel.ForwardPass, count: Double) throws {
        if i > 0 { replicas?.zeroGradients(ofReplica: i - 1) }
        guard pass.targetCount > 0 else { return }
        try parts[i].model.backward(pass, lossScale: Float(Double(pass.targetCount) / count))
    }
}

extension MllamaModel {
    /// `indices` as thread shards (`ShardReplicas`): one part per engine thread when the base is frozen, there are
    /// at least two samples, the layers are narrow (`ShardReplicas.pay`), the replicas' gradients fit in memory
    /// and every one of `gradients` is an adapter parameter; else one part on the model.
    func threadShards(_ indices: [Int], gradients: [TrainableTensor]) -> StepShards {
        let count = min(Engine.threads, indices.count)
        guard count > 1, grads == nil, !gradients.isEmpty, ShardReplicas.pay(for: config) else {
            return StepShards(parts: indices.isEmpty ? [] : [(self, indices)], replicas: nil)
        }
        if shardReplicas.map({ $0.models.count + 1 != count || $0.key != ShardReplicas.key(self) }) ?? true {
            shardReplicas = ShardReplicas.fit(self, count: count) ? ShardReplicas(of: self, count: count) : nil
        }
        guard let replicas = shardReplicas, replicas.covers(gradients) else {
            return StepShards(parts: [(self, indices)], replicas: nil)
        }
        replicas.prepare()
        let models = [self] + replicas.models
        let parts = (0..<count).map { i in
            (models[i], Array(indices[World.part(i, of: count, count: indices.count)]))
        }
        return StepShards(parts: parts, replicas: replicas)
    }
}
