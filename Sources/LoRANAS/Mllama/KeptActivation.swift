import CBF16

/// An activation kept from forward for backward: as computed, or in the bf16 mode rounded to bfloat16 (half the
/// memory; torch's autocast keeps its matmul outputs in bf16 too). Backward widens it again, one layer at a time.
final class KeptActivation {
    let shape: [Int]
    private enum Storage {
        case float32(Tensor)
        case bfloat16(UnsafeMutablePointer<UInt16>)
    }
    private let storage: Storage

    /// Keeps `t` itself, or with `rounded` a bfloat16 copy (round to nearest even, as activations entering a bf16
    /// GEMM; `t` is then free to go).
    init(_ t: Tensor, rounded: Bool) {
        shape = t.shape
        guard rounded else {
            storage = .float32(t)
            return
        }
        let cols = max(1, t.shape.last ?? 1), rows = t.count / cols
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, t.count))
        Engine.parallelRanges(rows, grain: 64) { r in
            lr_bf16_convert_rows(t.ptr + r.lowerBound * cols, Int64(r.count), Int64(cols), Int64(cols),
                                 bits + r.lowerBound * cols)
        }
        storage = .bfloat16(bits)
    }

    deinit {
        if case .bfloat16(let bits) = storage { bits.deallocate() }
    }

    /// The values as float32: the kept tensor, or a widened copy of the bfloat16 one.
    func tensor() -> Tensor {
        switch storage {
        case .float32(let t):
            return t
        case .bfloat16(let bits):
            let t = Tensor(uninitialized: shape)
            Engine.parallelRanges(t.count, grain: 1 << 16) { r in
                lr_bf16_widen(bits + r.lowerBound, Int64(r.count), t.ptr + r.lowerBound)
            }
            return t
        }
    }
}
