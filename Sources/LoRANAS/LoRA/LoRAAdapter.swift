import Foundation

/// PEFT's LoRA on one linear layer: y = W·x + (lora_alpha / r)·B·A·dropout(x).
/// A (r, in) starts Kaiming-uniform (bound 1/√in, PEFT's `kaiming_uniform_(a=√5)`), B (out, r) at zero,
/// so a new adapter is the identity.
public final class LoRAAdapter: LinearAdapter {
    public let module: String
    public let rank: Int
    /// lora_alpha: the adapter scales by lora_alpha / r.
    public let loraAlpha: Float
    public let a: TrainableTensor, b: TrainableTensor
    public let dropout: Float
    /// Dropout is applied only while training.
    public var training = false
    /// When false, backward leaves A and B's gradients alone (it still passes dx through).
    public var trainable = true
    public private(set) var isMerged = false
    var rng: SplitMix64
    private var scale: [Float]
    private var saved: (n: Int, u: Tensor, dropped: Tensor?, mask: [Float]?, packed: LowRank.PackedFactors?)?
    private var weightBeforeMerge: Tensor?

    public var scaling: Float { loraAlpha / Float(rank) }
    public var parameters: [TrainableTensor] { [a, b] }
    public var parameterCount: Int { a.value.count + b.value.count }

    /// `rank` is positive (callers check ranks where users give them).
    public init(
        module: String, inFeatures: Int, outFeatures: Int, rank: Int, loraAlpha: Float, dropout: Float = 0,
        rng: inout SplitMix64
    ) {
        self.module = module
        self.rank = rank
        self.loraAlpha = loraAlpha
        self.dropout = dropout
        a = TrainableTensor(name: module + ".lora_A", value: Tensor(zeros: [rank, inFeatures]))
        b = TrainableTensor(name: module + ".lora_B", value: Tensor(zeros: [outFeatures, rank]))
        let bound = 1 / Float(inFeatures).squareRoot()
        for i in 0..<a.value.count { a.value.ptr[i] = rng.uniform(-bound, bound) }
        self.rng = rng.derived(module)
        scale = Array(repeating: loraAlpha / Float(rank), count: rank)
    }

    private init(sharing other: LoRAAdapter) {
        module = other.module
        rank = other.rank
        loraAlpha = other.loraAlpha
        dropout = other.dropout
        a = other.a.sharingValue()
        b = other.b.sharingValue()
        rng = other.rng
        scale = other.scale
    }

    public func shardCopy() -> LinearAdapter { LoRAAdapter(sharing: self) }

    public func copySettings(to copy: LinearAdapter, part: Int) {
        guard let copy = copy as? LoRAAdapter else { return }
        copy.training = training
        copy.trainable = trainable
        copy.isMerged = isMerged
        copy.rng = rng.derived("part \(part)")
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, bf16X: BF16Rows?) {
        if isMerged { return }
        let inF = a.value.shape[1], outF = b.value.shape[0]
        let u = Tensor(uninitialized: [n, rank])  // written by the first GEMM
        var input = x, dropped: Tensor? = nil, mask: [Float]? = nil
        if training && dropout > 0 {
            let keep = 1 / (1 - dropout)
            let m = (0..<(n * inF)).map { _ in rng.uniform(0, 1) < dropout ? Float(0) : keep }
            let d = Tensor(zeros: [n, inF])
            for i in 0..<(n * inF) { d.ptr[i] = x[i] * m[i] }
            input = UnsafePointer(d.ptr)
            dropped = d
            mask = m
        }
        let packed = LowRank.forward(
            y: y, u: u.ptr, x: input, a: a.value.ptr, b: b.value.ptr, scale: scale, n: n,
            inFeatures: inF, outFeatures: outF, rank: rank,
            bf16X: dropped == nil ? bf16X : bf16X.map { BF16Rows(input, m: n, k: inF, kernel: $0.kernel) })
        saved = (n, u, dropped, mask, packed)
    }

    public func backward(dx: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int,
                         bf16DY: BF16Rows?) {
        if isMerged { return }
        let inF = a.value.shape[1], outF = b.value.shape[0]
        // x holds the forward's input values (the layer may have computed them again)
        guard let s = saved, s.n == n else {
            preconditionFailure("LoRA backward on \(module) without its forward")
        }
        let input = s.dropped.map { UnsafePointer($0.ptr) } ?? x
        let dIn = s.mask == nil ? dx : (dx == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: n * inF))
        if s.mask != nil, let dIn { dIn.initialize(repeating: 0, count: n * inF) }
        LowRank.backward(
            dx: dIn, dA: trainable ? a.grad.ptr : nil, dB: trainable ? b.grad.ptr : nil, dScale: nil,
            dy: dy, x: input, u: s.u.ptr, a: a.value.ptr, b: b.value.ptr, scale: scale,
            n: n, inFeatures: inF, outFeatures: outF, rank: rank, packed: s.packed, bf16DY: bf16DY)
        if let m = s.mask, let dIn, let dx {
            for i in 0..<(n * inF) { dx[i] += dIn[i] * m[i] }
            dIn.deallocate()
        }
    }

    public func weightDelta() -> FoldedLowRank.Factors? {
        isMerged || (training && dropout > 0) ? nil : FoldedLowRank.Factors(a: a.value, b: b.value, scale: scale)
    }

    public func backward(folded factors: FoldedLowRank.Factors, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                         n: Int) {
        guard trainable else { return }
        FoldedLowRank.backward(factors, dy: dy, x: x, n: n, dA: a.grad.ptr, dB: b.grad.ptr, dScale: nil)
    }

    /// W += scaling·B·A. A merge that would make W non-finite is refused.
    public func merge(into weight: Tensor) throws {
        guard !isMerged else { return }
        let delta = Tensor(zeros: weight.shape)
        gemm(
            false, false, m: weight.shape[0], n: weight.shape[1], k: rank, scale: scaling, a: b.value.ptr,
            b: a.value.ptr, c: delta.ptr)
        let merged = weight.copy()
        axpy(1, delta.ptr, merged.ptr, merged.count)
        guard merged.isFinite else {
            throw LoRANASError.numeric("merging \(module) gives non-finite weights; merge refused")
        }
        weightBeforeMerge = weight.copy()
        weight.copy(from: merged)
        isMerged = true
    }

    /// Restores the exact weight the merge started from.
    public func unmerge(from weight: Tensor) {
        guard isMerged, let w = weightBeforeMerge else { return }
        weight.copy(from: w)
        weightBeforeMerge = nil
        isMerged = false
    }
}
