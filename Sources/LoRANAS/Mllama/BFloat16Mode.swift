/// The bf16 mode (issue 12): the frozen linear weights live in memory once, as bfloat16 packed for the best bf16
/// GEMM this CPU has (AMX, else AVX512-BF16), which computes their forward and input gradient with fp32 sums; LoRA's
/// products with the activations run there too (`LowRank`). LoRA's parameters, α, norms, attention, softmax, the
/// loss and the optimizer stay fp32, as does everything that is not a linear layer (embeddings, the patch
/// embedding). Without either kernel the weights are rounded in place and computed in fp32, and `bf16Summary` says
/// so. The switch is one-way: loading weights into a bf16 model is refused (its packings would go stale).
extension MllamaModel {
    /// Loads a model directory for `dtype`. In bfloat16 with a kernel, each linear weight goes from the checkpoint
    /// into its packing as bfloat16 (a bf16 checkpoint is copied as it is, other dtypes rounded once), and its
    /// float32 storage is never written.
    public convenience init(path: String, dtype: WeightDType) throws {
        guard dtype == .bfloat16, let kernel = BF16Kernel.best else {
            try self.init(path: path)
            if dtype == .bfloat16 { try useBFloat16() }
            return
        }
        try self.init(config: MllamaConfig(contentsOf: path))
        try load(from: Checkpoint(path: path), packing: kernel)
        sourcePath = path
        markBFloat16(kernel)
    }

    /// Switches a float32 model's frozen base to bfloat16: every linear weight is rounded, packed, and its float32
    /// memory given back. One-way, and the last step after the weights are final (loaded or initialized); the base
    /// cannot be pretrained afterwards. Returns how the weights are computed.
    @discardableResult
    public func useBFloat16() throws -> String {
        try require(grads == nil, "a model whose base weights are being trained stays float32")
        guard computeDType == .float32 else { return bf16Summary }
        let kernel = BF16Kernel.best
        for layer in allLinears {
            if let kernel {
                layer.bf16 = PackedBF16Matrix(layer.weight, kernel: kernel)
                params.releaseMemory(of: layer.name + ".weight")
            } else {
                for i in 0..<layer.weight.count {
                    layer.weight.ptr[i] = Float(bitPattern: UInt32(bfloat16Bits(layer.weight.ptr[i])) << 16)
                }
            }
        }
        markBFloat16(kernel)
        return bf16Summary
    }

    private func markBFloat16(_ kernel: BF16Kernel?) {
        computeDType = .bfloat16
        bf16Summary = kernel.map { "bfloat16 weights on \($0.rawValue) (\($0 == .amx ? "AMX tiles" : "AVX512-BF16"))" }
            ?? "bfloat16 weights computed in float32 (this CPU has neither AMX nor AVX512-BF16)"
    }

    /// Parameter `name`'s element `i` (row-major) as the model computes with it: from the packing for a bf16
    /// linear weight, else from `params`.
    func parameterValue(_ name: String, _ i: Int, packed: [String: PackedBF16Matrix]) -> Float {
        guard let w = packed[name] else { return params[name].ptr[i] }
        return w[i / w.cols, i % w.cols]
    }

    /// The packed linear weights by parameter name (empty in float32 mode).
    var packedWeights: [String: PackedBF16Matrix] {
        Dictionary(uniqueKeysWithValues: allLinears.compactMap { l in l.bf16.map { (l.name + ".weight", $0) } })
    }
}

extension PackedBF16Matrix {
    /// Reads tensor `name` (rows × cols) of a checkpoint as bfloat16 and packs it; NaN or infinity is refused.
    convenience init(reading name: String, from ckpt: Checkpoint, shape: [Int], kernel: BF16Kernel) throws {
        let count = shape.reduce(1, *)
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, count))
        defer { bits.deallocate() }
        try ckpt.readBFloat16(name, into: bits, count: count)
        for i in 0..<count where bits[i] & 0x7F80 == 0x7F80 {
            throw LoRANASError.numeric("checkpoint \(ckpt.path) contains NaN or infinite weights (\(name))")
        }
        self.init(bits: bits, rows: shape[0], cols: count / max(1, shape[0]), kernel: kernel)
    }
}
