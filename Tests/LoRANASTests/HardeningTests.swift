import Foundation
import XCTest
@testable import LoRANAS

/// Regression tests for issue 7's defects in the engine's training and adapter paths.
final class HardeningTests: XCTestCase {
    var model: MllamaModel!
    var dir: String!

    override func setUpWithError() throws {
        model = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loranas-hard-\(UUID().uuidString)").path
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func assertInvalid(
        _ body: @autoclosure () throws -> Any, contains text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssert("\(e)".contains(text), "\(e)", file: file, line: line)
        }
    }

    /// Defect 4: a sample with no target tokens is refused where it is added, by index.
    func testSampleWithoutTargetsIsRefusedWhereAdded() throws {
        let d = try Dataset.synthetic(config: model.config, count: 2, seqLen: 6, seed: 1, withImages: false)
        let ids = [1, 2, 3, 4]
        var labels = [Int](repeating: CrossEntropy.ignoreIndex, count: 4)
        labels[0] = 5  // the first label is never a target
        assertInvalid(try d.append(Sample(inputIds: ids, labels: labels)), contains: "sample 2 has no target tokens")
        XCTAssertEqual(d.count, 2)
        labels[3] = 7
        XCTAssertNoThrow(try d.append(Sample(inputIds: ids, labels: labels)))
    }

    /// Defect 2 (run sizes): huge ranks are refused with a message, before any allocation.
    func testHugeRanksAreRefusedBeforeAllocating() throws {
        let d = try Dataset.synthetic(config: model.config, count: 2, seqLen: 6, seed: 1)
        var s = SearchOptions()
        s.space = [4, 1_000_000]
        assertInvalid(try model.search(train: d, validation: d, options: s), contains: "1...65536")
        var f = FinetuneOptions()
        f.ranks = .uniform(1_000_000)
        assertInvalid(try model.finetune(train: d, validation: d, options: f), contains: "1...65536")
        XCTAssertThrowsError(try Memory.require(1 << 62, for: "a test job")) { e in
            XCTAssert("\(e)".contains("a test job needs about"), "\(e)")
        }
    }

    /// Defect 2 (batches): a batch whose activations cannot fit is refused before the forward
    /// allocates them (the input_ids array is not even read).
    func testOversizedBatchIsRefusedBeforeAllocating() throws {
        let b = MllamaBatch(inputIds: [], batchSize: 1 << 22, seqLen: 256)
        XCTAssertThrowsError(try model.forward(b)) { e in
            XCTAssert("\(e)".contains("a batch of 4194304 × 256 tokens needs about"), "\(e)")
        }
        let long = MllamaBatch(inputIds: [], batchSize: 1, seqLen: model.config.text.maxPositionEmbeddings + 1)
        XCTAssertThrowsError(try model.forward(long)) { e in XCTAssert("\(e)".contains("max_position_embeddings")) }
    }

    /// Defect 7: a negative seed, non-integer or huge rank_pattern values, and damaged run states
    /// are errors, not traps.
    func testOptionsAndAdapterConfigsThatUsedToTrap() throws {
        assertInvalid(
            try OptionsJSON.finetune(JSON.parse(#"{"ranks": {"random": 1000, "seed": -1}}"#)),
            contains: "seed must be non-negative")
        assertInvalid(try OptionsJSON.search(JSON.parse(#"{"seed": -5}"#)), contains: "seed must be non-negative")
        for bad in ["1e300", "2.5", "-3", "0"] {
            assertInvalid(
                try AdapterConfig(json: JSON.parse(#"{"r": 4, "rank_pattern": {"q_proj": \#(bad)}}"#)),
                contains: "is not a rank")
        }
        for bad in ["1e300", "-1", "0"] {
            assertInvalid(
                try AdapterConfig(json: JSON.parse(#"{"r": 4, "lora_alpha": \#(bad)}"#)),
                contains: "lora_alpha must be a positive number")
        }
        // PEFT's LoraConfig default for a missing lora_alpha is 8, not r.
        XCTAssertEqual(try AdapterConfig(json: JSON.parse(#"{"r": 4}"#)).loraAlpha, 8)
    }

    /// One step of a small search that leaves its run state in `dir`.
    func searchOneStep() throws -> (Dataset, SearchOptions) {
        let d = try Dataset.synthetic(config: model.config, count: 4, seqLen: 6, seed: 1)
        var o = SearchOptions()
        o.space = [2, 4]
        o.batchSize = 2
        o.maxSteps = 1
        o.checkpointDir = dir
        _ = try model.search(train: d, validation: d, options: o)
        return (d, o)
    }

    func testDamagedRunStateIsAnErrorNotATrap() throws {
        var (d, o) = try searchOneStep()
        let file = try SafeTensorsFile(path: RunState.path(dir))
        let stateText = try XCTUnwrap(file.metadata["loranas_state"])
        var tensors = try file.names.map { ($0, SafeTensorsWriter.Payload.f32(try file.tensor($0))) }
        // A tensor of the wrong shape.
        let k = try XCTUnwrap(tensors.firstIndex { $0.0.hasSuffix(".lora_A") })
        tensors[k].1 = .f32(Tensor(zeros: [3]))
        try SafeTensorsWriter.write(tensors, metadata: ["loranas_state": stateText], to: RunState.path(dir))
        o.maxSteps = 2
        assertInvalid(try model.search(train: d, validation: d, options: o), contains: "has shape [3]")
        // A state without its loop.
        var state = try JSON.parse(stateText)
        if case .object(let kv) = state { state = .object(kv.filter { $0.0 != "loop" }) }
        try SafeTensorsWriter.write(
            [("x", .f32(Tensor(zeros: [1])))], metadata: ["loranas_state": state.serialized],
            to: RunState.path(dir))
        assertInvalid(try model.search(train: d, validation: d, options: o), contains: "has no loop")
    }

    /// Defect 8: a run state is not resumed onto another base model with the same config.
    func testResumeRefusesAnotherBaseModelWithTheSameConfig() throws {
        var (d, o) = try searchOneStep()
        let other = try MllamaModel(path: MllamaFixtureTests.path("tiles4_gqa"))
        other.params["language_model.model.norm.weight"].ptr[0] += 0.5
        o.maxSteps = 2
        assertInvalid(try other.search(train: d, validation: d, options: o), contains: "different run")
    }

    /// Defect 8: NaN adapter weights are refused on load.
    func testNonFiniteAdapterWeightsAreRefused() throws {
        try model.attachLoRA(
            ranks: ["language_model.model.layers.0.self_attn.q_proj": 2],
            loraAlpha: { _, _ in 4 }, seed: 0)
        try PEFTAdapter.save(model.loraAdapters, to: dir)
        let f = try SafeTensorsFile(path: dir + "/adapter_model.safetensors")
        var tensors = try f.names.map { ($0, SafeTensorsWriter.Payload.f32(try f.tensor($0))) }
        if case .f32(let t) = tensors[0].1 { t.ptr[0] = .nan }
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: dir + "/adapter_model.safetensors")
        tensors.removeAll()
        assertInvalid(try model.loadPEFTAdapter(dir), contains: "NaN or infinite weights")
    }

    /// Defect 5: the adapter directory is written as a unit. A save that fails half way leaves
    /// the old pair whole; a successful one replaces both files and keeps foreign files.
    func testAdapterDirectoryIsReplacedAsAUnit() throws {
        let q = "language_model.model.layers.0.self_attn.q_proj"
        try model.attachLoRA(ranks: [q: 4], loraAlpha: { _, _ in 16 }, seed: 0)
        try PEFTAdapter.save(model.loraAdapters, to: dir)
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/README.md"))
        let oldConfig = try Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))
        // A write that dies after the weights: nothing of it reaches the directory.
        XCTAssertThrowsError(
            try AtomicDirectory.write(dir) { staging in
                try Data("torn".utf8).write(to: URL(fileURLWithPath: staging + "/adapter_model.safetensors"))
                throw LoRANASError.io("killed")
            })
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json")), oldConfig)
        XCTAssertEqual(try model.loadPEFTAdapter(dir).first?.loraAlpha, 16)
        // A new adapter with another alpha replaces both files together.
        try model.attachLoRA(ranks: [q: 4], loraAlpha: { _, _ in 64 }, seed: 1)
        try PEFTAdapter.save(model.loraAdapters, to: dir)
        XCTAssertEqual(try model.loadPEFTAdapter(dir).first?.loraAlpha, 64)
        XCTAssertEqual(try String(contentsOfFile: dir + "/README.md", encoding: .utf8), "notes")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: (dir as NSString).deletingLastPathComponent)
            .filter { $0.contains((dir as NSString).lastPathComponent + ".") }
        XCTAssertEqual(leftovers, [], "no staging directories are left behind")
    }

    /// Defect 8: LORANAS_NUM_THREADS that is not a count is an error, and so is a thread count
    /// the engine cannot run (it used to clamp to 64 without a word).
    func testThreadSettingsAreCheckedNotClamped() throws {
        setenv("LORANAS_NUM_THREADS", "abc", 1)
        defer { unsetenv("LORANAS_NUM_THREADS") }
        assertInvalid(try Engine.checkEnvironment(), contains: "LORANAS_NUM_THREADS=\"abc\"")
        setenv("LORANAS_NUM_THREADS", "2", 1)
        XCTAssertNoThrow(try Engine.checkEnvironment())
        let before = Engine.threads
        assertInvalid(try Engine.setThreads(500), contains: "1...64")
        XCTAssertEqual(Engine.threads, before)
    }

    /// Defect 8: evaluation batch sizes out of range say what the range is.
    func testEvaluateBatchSizeMessage() throws {
        let d = try Dataset.synthetic(config: model.config, count: 2, seqLen: 6, seed: 1)
        assertInvalid(try model.evaluate(d, batchSize: 1_000_000_000), contains: "1...1048576, got 1000000000")
    }
}
