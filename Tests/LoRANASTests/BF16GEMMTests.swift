import Foundation
import XCTest
@testable import LoRANAS

/// The bf16 GEMMs (AMX and AVX512-BF16), forward (x·Wᵀ) and input gradient (dy·W on the same packing), against a
/// float64 reference on the same bfloat16-rounded inputs:
/// products of two bf16 values are exact in fp32, so the only difference is fp32 accumulation order. Shapes
/// cover odd k, n past a 32-column panel, row counts off the kernels' row blocks, and accumulation into y.
final class BF16GEMMTests: XCTestCase {
    func testLinearEqualsAFloat64ReferenceOnRoundedInputs() throws {
        try XCTSkipIf(BF16Kernel.available.isEmpty, "this CPU has neither AMX nor AVX512-BF16")
        for kernel in BF16Kernel.available {
            try check(kernel)
        }
    }

    private func check(_ kernel: BF16Kernel) throws {
        let saved = Engine.threads
        defer { Engine.threads = saved }
        var rng = SplitMix64(seed: 11)
        let shapes = [(1, 1, 1), (13, 37, 45), (8, 64, 32), (64, 256, 96), (7, 3, 70), (130, 96, 33), (33, 70, 129)]
        for (m, k, n) in shapes {
            for threads in [1, 2] {
                Engine.threads = threads
                let x = Tensor((0..<(m * k)).map { _ in rng.uniform(-2, 2) }, shape: [m, k])
                let w = Tensor((0..<(n * k)).map { _ in rng.uniform(-1, 1) }, shape: [n, k])
                let start = Tensor((0..<(m * n)).map { _ in rng.uniform(-1, 1) }, shape: [m, n])
                let packed = PackedBF16Matrix(w, kernel: kernel)
                let y = Tensor(zeros: [m, n])
                BF16.linear(x.ptr, m: m, w: packed, y: y.ptr)
                let acc = Tensor(start.array, shape: [m, n])
                BF16.linear(x.ptr, m: m, w: packed, y: acc.ptr, accumulate: true)
                for i in 0..<m {
                    for j in 0..<n {
                        var ref = 0.0, size = 0.0
                        for p in 0..<k {
                            let prod = Double(rounded(x.ptr[i * k + p])) * Double(rounded(w.ptr[j * k + p]))
                            ref += prod
                            size += abs(prod)
                        }
                        let tol = 1e-6 * size + 1e-30
                        let at = "\(kernel) \(m)×\(k)×\(n) [\(i), \(j)]"
                        XCTAssertEqual(Double(y.ptr[i * n + j]), ref, accuracy: tol, at)
                        let expected = ref + Double(start.ptr[i * n + j])
                        XCTAssertEqual(Double(acc.ptr[i * n + j]), expected, accuracy: tol + 1e-6)
                    }
                }
                try checkInputGradient(packed, w, m: m, rng: &rng)
            }
        }
    }

    /// dx += dy·W on the forward's packing, and the packing read back, against the rounded W.
    private func checkInputGradient(_ packed: PackedBF16Matrix, _ w: Tensor, m: Int, rng: inout SplitMix64) throws {
        let n = packed.rows, k = packed.cols
        let dy = Tensor((0..<(m * n)).map { _ in rng.uniform(-2, 2) }, shape: [m, n])
        let start = Tensor((0..<(m * k)).map { _ in rng.uniform(-1, 1) }, shape: [m, k])
        let dx = start.copy()
        BF16.inputGradient(dy.ptr, m: m, w: packed, dx: dx.ptr)
        let back = packed.unpacked()
        for r in 0..<n {
            for j in 0..<k {
                XCTAssertEqual(back.ptr[r * k + j], rounded(w.ptr[r * k + j]), "unpacked W[\(r), \(j)]")
                XCTAssertEqual(packed[r, j], rounded(w.ptr[r * k + j]), "W[\(r), \(j)] read from the packing")
            }
        }
        for i in 0..<m {
            for j in 0..<k {
                var ref = Double(start.ptr[i * k + j]), size = 0.0
                for p in 0..<n {
                    let prod = Double(rounded(dy.ptr[i * n + p])) * Double(rounded(w.ptr[p * k + j]))
                    ref += prod
                    size += abs(prod)
                }
                let at = "\(packed.kernel) dx \(m)×\(n)×\(k) [\(i), \(j)]"
                XCTAssertEqual(Double(dx.ptr[i * k + j]), ref, accuracy: 1e-6 * size + 1e-6, at)
            }
        }
    }

    func testRoundingIsNearestEvenAsTorch() {
        XCTAssertEqual(bfloat16Bits(1.0), 0x3F80)
        XCTAssertEqual(bfloat16Bits(Float(bitPattern: 0x3F80_8000)), 0x3F80, "a tie rounds to the even neighbour")
        XCTAssertEqual(bfloat16Bits(Float(bitPattern: 0x3F81_8000)), 0x3F82)
    }

    private func rounded(_ f: Float) -> Float {
        Float(bitPattern: UInt32(bfloat16Bits(f)) << 16)
    }
}

/// LoRA and the supernet in bf16 mode (their activation-side GEMMs on the bf16 kernel, as autocast runs them)
/// against the same adapters in fp32: outputs and every gradient within bf16's rounding of the GEMM inputs.
final class BF16AdapterTests: XCTestCase {
    func testLoRAAndSupernetInBF16MatchFloat32() throws {
        try XCTSkipIf(BF16Kernel.available.isEmpty, "this CPU has neither AMX nor AVX512-BF16")
        for kernel in BF16Kernel.available {
            var g = SplitMix64(seed: 5)
            let lora = LoRAAdapter(module: "m", inFeatures: 70, outFeatures: 45, rank: 8, loraAlpha: 16, rng: &g)
            let supernet = SupernetAdapter(module: "m", inFeatures: 70, outFeatures: 45, space: [2, 4, 8],
                                           loraAlpha: 16, rng: &g)
            var rng = TestRNG(7)
            for t in [lora.b, supernet.b, supernet.logits] {
                for i in 0..<t.value.count { t.value.ptr[i] = rng.uniform(-0.5, 0.5) }
            }
            let grads: [(LinearAdapter, [TrainableTensor])] = [
                (lora, [lora.a, lora.b]), (supernet, [supernet.a, supernet.b, supernet.logits]),
            ]
            for (adapter, params) in grads {
                let x = rng.tensor([37, 70]), dy = rng.tensor([37, 45])
                let exact = run(adapter, params, x: x, dy: dy, kernel: nil)
                let bf16 = run(adapter, params, x: x, dy: dy, kernel: kernel)
                for (name, (a, b)) in zip(["y", "dx"] + params.map(\.name), zip(bf16, exact)) {
                    let err = relativeError(a, b)
                    XCTAssertLessThan(err, 2e-2, "\(kernel) \(type(of: adapter)) \(name)")
                    XCTAssertGreaterThan(err, 0, "\(kernel) \(type(of: adapter)) \(name): not computed in bf16")
                }
            }
        }
    }

    /// y, dx and each parameter's gradient after one forward and backward.
    private func run(_ adapter: LinearAdapter, _ params: [TrainableTensor], x: Tensor, dy: Tensor,
                     kernel: BF16Kernel?) -> [Tensor] {
        let n = x.shape[0]
        let y = Tensor(zeros: dy.shape), dx = Tensor(zeros: x.shape)
        for p in params { p.grad.zero() }
        let x16 = kernel.map { BF16Rows(x.ptr, m: n, k: x.shape[1], kernel: $0) }
        adapter.forward(x: x.ptr, y: y.ptr, n: n, bf16X: x16)
        adapter.backward(dx: dx.ptr, dy: dy.ptr, x: x.ptr, n: n)
        return [y, dx] + params.map { $0.grad.copy() }
    }
}

/// The bf16 mode keeps each linear weight once: switching a loaded model gives the float32 pages back, and loading
/// straight into the packing computes the same bits as switching after a float32 load.
final class BF16ModeTests: XCTestCase {
    func testSwitchingReleasesTheFloat32WeightsAndMatchesLoadingInBF16() throws {
        try XCTSkipIf(BF16Kernel.best == nil, "this CPU has neither AMX nor AVX512-BF16")
        let dir = MllamaFixtureTests.path("tiles4_gqa")
        let batch = try MllamaFixtureTests.batch("tiles4_gqa/inputs.safetensors")
        let switched = try MllamaModel(path: dir)
        let page = Int(sysconf(Int32(_SC_PAGESIZE))) / 4
        let large = switched.allLinears.filter { $0.weight.count >= 3 * page }
        XCTAssertFalse(large.isEmpty, "no linear weight spans a whole page: the release is not exercised")
        XCTAssertTrue(large.allSatisfy { $0.weight.ptr[$0.weight.count / 2] != 0 })
        try switched.useBFloat16()
        for layer in large {
            XCTAssertEqual(layer.weight.ptr[layer.weight.count / 2], 0, "\(layer.name): float32 page kept")
            XCTAssertNotEqual(layer.weightValues().ptr[layer.weight.count / 2], 0, layer.name)
        }
        let loaded = try MllamaModel(path: dir, dtype: .bfloat16)
        XCTAssertEqual(loaded.computeDType, .bfloat16)
        let a = try switched.forward(batch).logits, b = try loaded.forward(batch).logits
        XCTAssertEqual(a.array, b.array)
        XCTAssertThrowsError(try switched.load(from: Checkpoint(path: dir)), "reloading would leave stale packings")
    }

    /// The whole backward in bf16 mode (kept activations in bf16, recomputations, the bf16 GEMMs) against fp32:
    /// every LoRA gradient of the fixture within bf16's rounding, and not equal (it did run in bf16).
    func testLoRAGradientsOfABF16ModelFollowFloat32() throws {
        try XCTSkipIf(BF16Kernel.best == nil, "this CPU has neither AMX nor AVX512-BF16")
        let dir = MllamaFixtureTests.path("tiles4_gqa")
        let batch = try MllamaFixtureTests.batch("tiles4_gqa/inputs.safetensors")
        func gradients(_ dtype: WeightDType) throws -> [Tensor] {
            let model = try MllamaModel(path: dir, dtype: dtype)
            let ranks = Dictionary(uniqueKeysWithValues: model.targetableLinears.map { ($0.name, 4) })
            let adapters = try model.attachLoRA(ranks: ranks, loraAlpha: { _, _ in 8 }, seed: 3)
            for a in adapters {
                for i in 0..<a.b.value.count { a.b.value.ptr[i] = Float(i % 7) * 0.01 - 0.03 }
            }
            try model.backward(try model.forward(batch, keepForBackward: true))
            return adapters.flatMap { [$0.a.grad.copy(), $0.b.grad.copy()] }
        }
        let exact = try gradients(.float32), bf16 = try gradients(.bfloat16)
        let all = { (ts: [Tensor]) in Tensor(ts.flatMap(\.array), shape: [ts.reduce(0) { $0 + $1.count }]) }
        let err = relativeError(all(bf16), all(exact))
        XCTAssertLessThan(err, 5e-2)
        XCTAssertGreaterThan(err, 1e-4)
    }
}
