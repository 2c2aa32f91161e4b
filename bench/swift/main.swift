// loranas-bench: kernel throughput beside the machine's ceilings, and Mllama LoRA / supernet
// training steps for the sizes in bench/configs. bench/run.py runs it beside PyTorch + PEFT.
import Foundation
import LoRANAS
#if canImport(Glibc)
    import Glibc
#endif

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func time(_ reps: Int, warmup: Int = 1, _ body: () throws -> Void) rethrows -> [Double] {
    for _ in 0..<warmup { try body() }
    return try (0..<reps).map { _ in
        let t = Date()
        try body()
        return Date().timeIntervalSince(t)
    }
}

func peakRSSMiB() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_maxrss) / 1024
}

// MARK: the sgemm ceiling

/// GFLOP/s of each of `reps` timed (n × n) · (n × n)ᵀ sgemms on the engine's threads (after one
/// untimed call): the compute ceiling that MFU is measured against, taken on this machine in this run.
func sgemmCeiling(n: Int, reps: Int) -> [Double] {
    let a = Tensor(zeros: [n, n])
    let b = Tensor(zeros: [n, n])
    let c = Tensor(zeros: [n, n])
    for i in 0..<a.count { a.ptr[i] = Float(i % 7) * 0.1 }
    for i in 0..<b.count { b.ptr[i] = Float(i % 5) * 0.1 }
    let times = time(reps) { gemm(false, true, m: n, n: n, k: n, a: a.ptr, b: b.ptr, c: c.ptr) }
    return times.map { 2.0 * Double(n * n * n) / $0 / 1e9 }
}

/// Prints the ceiling as one JSON line (bench/run.py reads it).
func ceiling(n: Int, reps: Int) {
    let all = sgemmCeiling(n: n, reps: reps)
    let fields: [(String, JSON)] = [
        ("threads", .number(Double(Engine.threads))), ("n", .number(Double(n))),
        ("gflops_median", .number(median(all))), ("gflops_all", .array(all.map { .number($0) })),
    ]
    print(JSON.object(fields).serialized)
}

// MARK: bf16

/// A bf16 kernel's ceiling in GFLOP/s: its peak loop on every engine thread at once (the GEMM it is compared with
/// runs on the same threads), the FLOP of all over the wall time, best of `reps` (noise only slows a peak loop).
func bf16Ceiling(_ kernel: BF16Kernel, reps: Int) -> Double {
    let iters = kernel == .amx ? 2_000_000 : 20_000_000
    let flop = BF16.peakKernel(kernel, iters: 1).flop * Double(iters * Engine.threads)  // time() warms up
    let times = time(reps) { Engine.parallelFor(Engine.threads) { _ in _ = BF16.peakKernel(kernel, iters: iters) } }
    return flop / (times.min() ?? .infinity) / 1e9
}

/// Each bf16 GEMM kernel (AMX, AVX512-BF16) against sgemm on a linear layer's shapes, and its MFU against its
/// own ceiling measured in the same run, as one JSON line per kernel and shape.
func bf16Kernels(reps: Int) {
    print(JSON.object([("bf16_kernels", .array(BF16Kernel.available.map { .string($0.rawValue) }))]).serialized)
    for kernel in BF16Kernel.available {
        let ceiling = bf16Ceiling(kernel, reps: 5)
        for (m, k, n) in [(512, 768, 2048), (512, 2048, 768), (1040, 512, 2048), (512, 768, 768)] {
            let x = Tensor(zeros: [m, k])
            let w = Tensor(zeros: [n, k])
            for i in 0..<x.count { x.ptr[i] = Float(i % 13) * 0.01 }
            for i in 0..<w.count { w.ptr[i] = Float(i % 7) * 0.01 }
            let y = Tensor(zeros: [m, n])
            let packed = PackedBF16Matrix(w, kernel: kernel)
            let flop = 2.0 * Double(m * n * k)
            let bf16 = flop / median(time(reps) { BF16.linear(x.ptr, m: m, w: packed, y: y.ptr) }) / 1e9
            let f32 = flop / median(time(reps) { gemm(false, true, m: m, n: n, k: k, a: x.ptr, b: w.ptr, c: y.ptr) })
                / 1e9
            print(JSON.object([
                ("kernel", .string(kernel.rawValue)), ("m", .number(Double(m))), ("k", .number(Double(k))),
                ("n", .number(Double(n))), ("threads", .number(Double(Engine.threads))),
                ("bf16_gflops", .number(bf16)), ("sgemm_gflops", .number(f32)),
                ("ceiling_gflops", .number(ceiling)), ("mfu", .number(bf16 / ceiling)),
            ]).serialized)
        }
    }
}

// MARK: kernels

func kernels() {
    print("memory ceiling (../shared/perf-limits.md) ≈ 25-33 GB/s; "
        + "sgemm ceiling measured below (2048³, median of 5)")
    let saved = Engine.threads
    for threads in [1, 2] {
        Engine.threads = threads
        let peak = median(sgemmCeiling(n: 2048, reps: 5))
        print(String(format: "sgemm ceiling 2048³, %d thread(s): %6.1f GFLOP/s", threads, peak))
        for (m, n, k, what) in [
            (1024, 1024, 1024, "square"), (512, 64, 1024, "LoRA down x·Aᵀ r=64"),
            (512, 1024, 64, "LoRA up t·Bᵀ r=64"),
            (512, 8, 1024, "LoRA down r=8"),
        ] {
            let a = Tensor(zeros: [m, k]), b = Tensor(zeros: [n, k]), c = Tensor(zeros: [m, n])
            for i in 0..<a.count { a.ptr[i] = Float(i % 7) * 0.1 }
            for i in 0..<b.count { b.ptr[i] = Float(i % 5) * 0.1 }
            let reps = max(3, 200_000_000 / (2 * m * n * k))
            let t = median(time(reps) { gemm(false, true, m: m, n: n, k: k, a: a.ptr, b: b.ptr, c: c.ptr) })
            print(
                String(
                    format: "gemm %-22@ %4d×%4d×%4d  %d thread(s): %6.1f GFLOP/s", what as NSString, m, n, k, threads,
                    2.0 * Double(m * n * k) / t / 1e9))
        }
        let n = 1 << 23
        let g = Tensor(zeros: [n]), u = Tensor(zeros: [n]), out = Tensor(zeros: [n])
        for i in 0..<n {
            g.ptr[i] = Float(i % 13) * 0.1 - 0.6
            u.ptr[i] = 0.5
        }
        let t = median(time(5) { SwiGLU.forward(m: out.ptr, gate: g.ptr, up: u.ptr, n: n) })
        print(
            String(
                format: "swiglu forward %d elements, %d thread(s): %6.1f GB/s (12 bytes/element)", n, threads,
                12.0 * Double(n) / t / 1e9))
        let rows = 8192, c = 1024
        let x = Tensor(zeros: [rows, c]), y = Tensor(zeros: [rows, c]), w = Tensor(zeros: [c]),
            r = Tensor(zeros: [rows])
        for i in 0..<x.count { x.ptr[i] = Float(i % 11) * 0.1 }
        for i in 0..<c { w.ptr[i] = 1 }
        let t2 = median(
            time(5) { RMSNorm.forward(y: y.ptr, rstd: r.ptr, x: x.ptr, w: w.ptr, n: rows, c: c, eps: 1e-5) })
        print(
            String(
                format: "rmsnorm forward %d×%d, %d thread(s): %6.1f GB/s (8 bytes/element)", rows, c, threads,
                8.0 * Double(rows * c) / t2 / 1e9))
        let t3 = median(time(5) { Softmax.forward(y: y.ptr, x: x.ptr, n: rows, c: c) })
        print(
            String(
                format: "softmax rows %d×%d, %d thread(s): %6.1f GB/s (8 bytes/element)", rows, c, threads,
                8.0 * Double(rows * c) / t3 / 1e9))
    }
    Engine.threads = saved
}

// MARK: training steps

/// The benchmark batch: B = 4, 128 text tokens starting with the image token, one 2×2 image of 4 tiles.
func benchBatch(_ c: MllamaConfig, seed: UInt64, batch b: Int = 4, seq s: Int = 128, images: Bool = true) -> MllamaBatch
{
    var rng = SplitMix64(seed: seed)
    let v = c.vision
    var ids = [Int](), labels = [Int]()
    for _ in 0..<b {
        ids.append(c.text.vocabSize)
        labels.append(-100)
        for _ in 1..<s {
            let t = Int(rng.next() % UInt64(c.text.vocabSize))
            ids.append(t)
            labels.append(t)
        }
    }
    let px = Tensor(zeros: [b, 1, v.maxNumTiles, v.numChannels, v.imageSize, v.imageSize])
    for i in 0..<px.count { px.ptr[i] = rng.uniform(-1, 1) }
    if !images {
        return MllamaBatch(inputIds: ids.map { min($0, c.text.vocabSize - 1) }, batchSize: b, seqLen: s, labels: labels)
    }
    return MllamaBatch(
        inputIds: ids, batchSize: b, seqLen: s, labels: labels, pixelValues: px, numImages: 1,
        aspectRatioIds: [Int](repeating: min(6, v.numAspectRatios), count: b),
        aspectRatioMask: [Int](repeating: 1, count: b * v.maxNumTiles),
        crossAttentionMask: [Int](repeating: 1, count: b * s * v.maxNumTiles))
}

/// The benchmark batch as a dataset of single samples, for the jobs' step (`trainingStep`).
func benchDataset(_ c: MllamaConfig, batch b: Int, seq s: Int, images: Bool) throws -> Dataset {
    let data = Dataset(config: c)
    for i in 0..<b {
        let one = benchBatch(c, seed: 1 + UInt64(i), batch: 1, seq: s, images: images)
        try data.append(try Sample(batchOfOne: one))
    }
    return data
}

/// A benchmark size (bench/configs/<size>) or a model directory's config.json.
func configDirectory(_ size: String) -> String {
    if size.contains("/") { return size }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("configs/\(size)").path
}

func step(size: String, mode: String, steps: Int, warmup: Int, batch: Int, seq: Int, images: Bool,
          bfloat16: Bool) throws {
    let dir = configDirectory(size)
    let config = try MllamaConfig(contentsOf: dir)
    let model = try MllamaModel(config: config)
    model.initializeRandomly(seed: 0)
    let compute = bfloat16 ? try model.useBFloat16() : "float32"
    let inputs = benchBatch(config, seed: 1, batch: batch, seq: seq, images: images)
    let data = try benchDataset(config, batch: batch, seq: seq, images: images)
    let targets = model.linears(matching: .all)
    var rng = SplitMix64(seed: 2)
    var trainables: [TrainableTensor] = []
    switch mode {
    case "lora":
        for l in targets {
            let a = LoRAAdapter(
                module: l.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, rank: 64, loraAlpha: 128,
                rng: &rng)
            for i in 0..<a.b.value.count { a.b.value.ptr[i] = 1e-3 }
            l.adapter = a
            trainables += a.parameters
        }
    case "supernet":
        for l in targets {
            let s = SupernetAdapter(
                module: l.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, space: [4, 8, 16, 32, 64],
                loraAlpha: 128, rng: &rng)
            s.trainAlpha = false
            l.adapter = s
            trainables += [s.a, s.b]
        }
    case "forward": break
    default: throw LoRANASError.invalidArgument("mode must be lora, supernet or forward")
    }
    let opt = Adam(trainables, AdamConfig(lr: 1e-4, weightDecay: 0.01))
    let world = try World.current()
    var k = 0
    let times = try time(steps, warmup: warmup) {
        if mode == "forward" {
            _ = try model.forward(inputs)
            return
        }
        k += 1
        _ = try model.trainingStep(data, Array(0..<batch), step: k, gradients: trainables)
        opt.step()
    }
    let lora = trainables.reduce(0) { $0 + $1.value.count }
    guard world.rank == 0 else { return }
    print(
        JSON.object([
            ("size", .string(size)), ("mode", .string(mode)), ("threads", .number(Double(Engine.threads))),
            ("ranks", .number(Double(world.size))),
            ("compute", .string(compute)), ("openblas_core", .string(Engine.openBLASCore)),
            ("step_ms_median", .number(1000 * median(times))),
            ("step_ms_all", .array(times.map { .number(1000 * $0) })),
            ("reduced_bytes_per_step", .number(Double(world.traffic.bytes / max(1, k)))),
            ("reduce_ms_per_step", .number(1000 * world.traffic.seconds / Double(max(1, k)))),
            ("peak_rss_mib", .number(peakRSSMiB())), ("params", .number(Double(model.parameterCount))),
            ("trainable_params", .number(Double(lora))),
        ]).serialized)
}

Engine.restartWithPreferredOpenBLASKernels()
let args = CommandLine.arguments
func option(_ name: String, _ fallback: String) -> String {
    if let i = args.firstIndex(of: "--" + name), i + 1 < args.count { return args[i + 1] }
    return fallback
}
if let t = Int(option("threads", "")) { Engine.threads = t }
do {
    switch args.count > 1 ? args[1] : "" {
    case "kernels": kernels()
    case "bf16": bf16Kernels(reps: Int(option("reps", "7")) ?? 7)
    case "ceiling": ceiling(n: Int(option("n", "2048")) ?? 2048, reps: Int(option("reps", "5")) ?? 5)
    case "step":
        try step(
            size: option("size", "tiny"), mode: option("mode", "lora"), steps: Int(option("steps", "6"))!,
            warmup: Int(option("warmup", "2"))!,
            batch: Int(option("batch", "4"))!, seq: Int(option("seq", "128"))!, images: option("images", "1") != "0",
            bfloat16: option("dtype", "float32") == "bfloat16")
    default:
        print(
            "usage: loranas-bench kernels | ceiling [--n 2048] [--reps 5] [--threads N]\n"
                + "       loranas-bench bf16 [--reps 7] [--threads N]   (AVX512-BF16 GEMM, MFU)\n"
                + "       loranas-bench step --size tiny|small|medium --mode lora|supernet|forward\n"
                + "                          [--steps N] [--warmup N]\n"
                + "                          [--threads N] [--batch B] [--seq S] [--images 0|1]\n"
                + "                          [--dtype float32|bfloat16]  (bfloat16: the frozen base on bf16 GEMMs)")
        exit(2)
    }
} catch {
    FileHandle.standardError.write("error: \(error)\n".data(using: .utf8)!)
    exit(1)
}
