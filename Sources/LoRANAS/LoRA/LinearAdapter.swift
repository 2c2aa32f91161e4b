/// Something added to a linear layer's output: a LoRA adapter or a supernet.
/// It sees the layer's input and accumulates into the output and the input gradient.
public protocol LinearAdapter: AnyObject {
    /// y (n, out) += adapter(x (n, in)). In the layer's bf16 mode `bf16X` is x converted for its kernel, and the
    /// GEMMs on the activations' side run on it (`LowRank`).
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, bf16X: BF16Rows?)
    /// dx (n, in) += ∂/∂x, and the adapter's own parameter gradients +=. `bf16DY`: dy converted, in bf16 mode.
    func backward(dx: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int,
                  bf16DY: BF16Rows?)
    /// The adapter as a change of its layer's weight, ΔW = B·diag(σ)·A, when it is one for the next forward (not
    /// while dropout is on, nor once merged). The layer may fold it into its weight (`FoldedLowRank`) instead of
    /// calling `forward`; it then calls `backward(folded:dy:x:n:)` instead of `backward`.
    func weightDelta() -> FoldedLowRank.Factors?
    /// Accumulates the parameter gradients after a forward that folded `factors` into the weight.
    func backward(folded factors: FoldedLowRank.Factors, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int)
    /// The tensors backward accumulates gradients into (when trained).
    var parameters: [TrainableTensor] { get }
    /// A copy for a part of a step's batch that runs on another thread (`ShardReplicas`): the same parameter
    /// values (shared, not copied), its own gradients (its `parameters` pair up with these by position) and
    /// forward cache.
    func shardCopy() -> LinearAdapter
    /// Gives `copy` (from `shardCopy`) this adapter's training settings for the next step, and part `part` a
    /// dropout stream of its own, derived from this adapter's.
    func copySettings(to copy: LinearAdapter, part: Int)
}

extension LinearAdapter {
    /// The float32 forward.
    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int) {
        forward(x: x, y: y, n: n, bf16X: nil)
    }

    /// Backward, converting dy itself if the forward ran in bf16.
    public func backward(dx: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int) {
        backward(dx: dx, dy: dy, x: x, n: n, bf16DY: nil)
    }
}
