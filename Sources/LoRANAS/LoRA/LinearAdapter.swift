/// Something added to a linear layer's output: a LoRA adapter or a supernet.
/// It sees the layer's input and accumulates into the output and the input gradient.
public protocol LinearAdapter: AnyObject {
    /// y (n, out) += adapter(x (n, in)); with a kernel (the layer's bf16 mode), the GEMMs on the activations'
    /// side run on it (`LowRank`).
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int, kernel: BF16Kernel?)
    /// dx (n, in) += ∂/∂x, and the adapter's own parameter gradients +=.
    func backward(dx: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int)
}

extension LinearAdapter {
    /// The float32 forward.
    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int) {
        forward(x: x, y: y, n: n, kernel: nil)
    }
}
