import Foundation
import XCTest
@testable import LoRANASCAPI

/// The header and the library agree: every function declared in loranas.h is exported by
/// libloranas.so, and every exported loranas_ symbol is declared.
final class CABITests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func declaredFunctions() throws -> Set<String> {
        let header = try String(
            contentsOf: Self.repo.appendingPathComponent("Sources/CLoRANAS/include/loranas.h"), encoding: .utf8)
        let re = try NSRegularExpression(pattern: #"\b(loranas_[a-z0-9_]+)\s*\("#)
        let ns = header as NSString
        return Set(
            re.matches(in: header, range: NSRange(location: 0, length: ns.length)).map {
                ns.substring(with: $0.range(at: 1))
            })
    }

    func exportedSymbols() throws -> Set<String> {
        let dir = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0])
            .deletingLastPathComponent()
        let candidates = [
            dir.appendingPathComponent("libloranas.so"),
            dir.deletingLastPathComponent().appendingPathComponent("libloranas.so"),
        ]
        guard let lib = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            XCTFail(
                "libloranas.so not found beside the tests (\(candidates.map(\.path))); "
                    + "build it with `swift build --product loranas`"
            )
            return []
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nm")
        p.arguments = ["-D", "--defined-only", lib.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        return Set(
            out.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ")
                guard parts.count == 3, parts[1] == "T", parts[2].hasPrefix("loranas_") else { return nil }
                return String(parts[2])
            })
    }

    func testHeaderAndExportsAgreeBothWays() throws {
        let declared = try declaredFunctions(), exported = try exportedSymbols()
        XCTAssertGreaterThan(declared.count, 10)
        XCTAssertEqual(declared.subtracting(exported).sorted(), [], "declared in loranas.h but not exported")
        XCTAssertEqual(exported.subtracting(declared).sorted(), [], "exported but not declared in loranas.h")
    }

    func testABIVersionMatchesHeader() throws {
        let header = try String(
            contentsOf: Self.repo.appendingPathComponent("Sources/CLoRANAS/include/loranas.h"), encoding: .utf8)
        XCTAssert(header.contains("#define LORANAS_ABI_VERSION \(loranas_abi_version())"))
    }

    func testNullArgumentsReturnErrorsNotTraps() {
        XCTAssertEqual(loranas_checkpoint_open(nil, nil), 1)
        XCTAssert(String(cString: loranas_last_error()).contains("NULL"))
        var h: OpaquePointer?
        XCTAssertEqual(loranas_checkpoint_open("/definitely/not/here", &h), 4)
        XCTAssertNil(h)
        XCTAssert(String(cString: loranas_last_error()).contains("/definitely/not/here"))
        var n: Int64 = 0
        XCTAssertEqual(loranas_checkpoint_count(nil, &n), 1)
        loranas_checkpoint_free(nil)
        var c: Float = 0
        let one: [Float] = [1]
        XCTAssertEqual(loranas_matmul_f32(nil, 1, nil, 1, &c, 1, 1, 1, 1, 0, 0), 1)
        XCTAssertEqual(loranas_matmul_f32(one, 1, one, 1, &c, 1, -1, 1, 1, 0, 0), 1)
        XCTAssertEqual(loranas_set_num_threads(0), 1)
    }

    func testTrainingEntryPointsRejectBadArgumentsWithoutTrapping() throws {
        var out: OpaquePointer?
        XCTAssertEqual(loranas_search(nil, nil, nil, nil, nil, nil, &out), 1)
        XCTAssertNil(out)
        XCTAssertEqual(loranas_finetune(nil, nil, nil, nil, nil, nil, nil), 1)
        XCTAssertEqual(loranas_evaluate(nil, nil, 4, &out), 1)
        XCTAssertEqual(loranas_dataset_create(nil, &out), 1)
        XCTAssertEqual(loranas_dataset_add(nil, nil), 1)
        XCTAssertEqual(loranas_result_json(nil, nil, 0, nil), 1)
        loranas_result_free(nil)
        loranas_dataset_free(nil)
        loranas_model_free(nil)

        var model: OpaquePointer?
        XCTAssertEqual(loranas_model_load(MllamaFixtureTests.path("tiles4_gqa"), nil, &model), 0)
        defer { loranas_model_free(model) }
        var ds: OpaquePointer?
        XCTAssertEqual(loranas_dataset_create(model, &ds), 0)
        defer { loranas_dataset_free(ds) }
        // An empty dataset, bad JSON, and an unknown option: errors with messages.
        XCTAssertEqual(loranas_search(model, ds, ds, "{}", nil, nil, &out), 1)
        XCTAssert(String(cString: loranas_last_error()).contains("non-empty"))
        XCTAssertEqual(loranas_search(model, ds, ds, "{not json", nil, nil, &out), 1)
        XCTAssert(String(cString: loranas_last_error()).contains("not valid JSON"))
        XCTAssertEqual(loranas_finetune(model, ds, ds, "{\"epoch\": 2}", nil, nil, &out), 1)
        XCTAssert(String(cString: loranas_last_error()).contains("unknown option \"epoch\""))
        XCTAssertEqual(loranas_model_save_adapter(model, "/tmp/nowhere"), 1)
        XCTAssert(String(cString: loranas_last_error()).contains("no LoRA adapters"))
        XCTAssertEqual(loranas_model_load_adapter(model, "/definitely/missing"), 4)
    }

    func testLastErrorIsPerThread() {
        XCTAssertEqual(loranas_matmul_f32(nil, 1, nil, 1, nil, 1, 1, 1, 1, 0, 0), 1)
        let mine = String(cString: loranas_last_error())
        final class Box: @unchecked Sendable { var text = "" }
        let other = Box()
        let done = DispatchSemaphore(value: 0)
        let t2 = Thread {
            var h: OpaquePointer?
            _ = loranas_checkpoint_open("/other/thread/path", &h)
            other.text = String(cString: loranas_last_error())
            done.signal()
        }
        t2.start()
        done.wait()
        XCTAssert(other.text.contains("/other/thread/path"))
        XCTAssertEqual(String(cString: loranas_last_error()), mine)
    }

    func testMatmulThroughTheABI() {
        // (2×3)·(3×2) with B given transposed.
        let a: [Float] = [1, 2, 3, 4, 5, 6], bt: [Float] = [1, 0, 1, 0, 1, 0]
        var c = [Float](repeating: 0, count: 4)
        XCTAssertEqual(loranas_matmul_f32(a, 6, bt, 6, &c, 4, 2, 3, 2, 0, 1), 0)
        XCTAssertEqual(c, [4, 2, 10, 5])
        // Buffers shorter than the dimensions say are refused before anything is read.
        XCTAssertEqual(loranas_matmul_f32(a, 5, bt, 6, &c, 4, 2, 3, 2, 0, 1), 1)
        XCTAssert(String(cString: loranas_last_error()).contains("a holds 5 elements, 6 needed"))
        XCTAssertEqual(loranas_matmul_f32(a, 6, bt, 6, &c, 3, 2, 3, 2, 0, 1), 1)
    }
}
