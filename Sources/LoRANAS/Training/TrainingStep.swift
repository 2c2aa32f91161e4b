import Foundation

/// A step's global batch: sample indices into a dataset (each rank builds only its shard).
typealias GlobalBatch = (data: Dataset, indices: [Int])

extension MllamaModel {
    /// Forward and backward on the global batch `indices` of `data`, data-parallel over the world: each rank
    /// runs its shard (split again across its threads, `threadShards`), the ranks sum their target-token counts
    /// and scale their loss gradients by 1/(global count), then sum the gradients, so every rank holds the
    /// gradient of the global batch's mean loss, as one process would compute it. The batch must have a target,
    /// and the loss and every gradient must be finite, else every rank throws before the caller's optimizer runs.
    public func trainingStep(_ data: Dataset, _ indices: [Int], step: Int, gradients: [TrainableTensor]) throws
        -> Float
    {
        let world = try World.current()
        let shards = threadShards(world.shard(indices), gradients: gradients)
        let passes = try world.agree {
            try shards.map { i in try shards.parts[i].model.forward(try data.batch(shards.parts[i].indices),
                                                                    keepForBackward: true) }
        }
        let (loss, count) = try globalLoss(passes, world)
        guard count > 0 else {
            throw LoRANASError.invalidArgument("step \(step): the batch has no target tokens (every label is -100)")
        }
        guard loss.isFinite else { throw LoRANASError.numeric("step \(step): loss is \(loss) (a diverged run)") }
        try world.agree { _ = try shards.map { i in try shards.backward(i, passes[i], count: count) } }
        shards.replicas?.addGradients(into: gradients)
        world.sum(gradients.map(\.grad))
        if let bad = gradients.first(where: { !$0.grad.isFinite }) {
            throw LoRANASError.numeric("step \(step): gradient of \(bad.name) is not finite")
        }
        return loss
    }

    /// The mean loss over the world's target tokens, and their count (a missing or non-finite local loss
    /// makes the mean NaN on every rank).
    private func globalLoss(_ passes: [ForwardPass], _ world: World) throws -> (loss: Float, count: Double) {
        var sums: [Double] = [0, 0]
        for pass in passes where pass.targetCount > 0 {
            sums[0] += Double(pass.loss ?? .nan) * Double(pass.targetCount)
            sums[1] += Double(pass.targetCount)
        }
        world.sum(&sums)
        return (Float(sums[0] / sums[1]), sums[1])
    }
}

/// Gradients summed across ranks in buckets: small tensors are packed into one buffer of at most
/// `bucketFloats` and reduced together (one message instead of hundreds), larger ones in place. The
/// buckets depend only on the tensors' sizes, so every run cuts them the same way.
struct GradientBuckets {
    static let bucketFloats = 1 << 20
    let tensors: [Tensor]

    init(_ tensors: [Tensor]) {
        self.tensors = tensors
    }

    /// Calls `reduce(pointer, count)` on every bucket and large tensor; packed buckets are copied back.
    func reduce(_ reduce: (UnsafeMutablePointer<Float>, Int) -> Void) {
        let buffer = Tensor(uninitialized: [Self.bucketFloats])
        var packed: [Tensor] = []
        var used = 0
        func flush() {
            guard used > 0 else { return }
            reduce(buffer.ptr, used)
            var offset = 0
            for t in packed {
                t.ptr.update(from: buffer.ptr + offset, count: t.count)
                offset += t.count
            }
            packed = []
            used = 0
        }
        for t in tensors {
            if t.count > Self.bucketFloats / 4 {
                reduce(t.ptr, t.count)
                continue
            }
            if used + t.count > Self.bucketFloats { flush() }
            (buffer.ptr + used).update(from: t.ptr, count: t.count)
            packed.append(t)
            used += t.count
        }
        flush()
    }
}
