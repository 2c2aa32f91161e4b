import Foundation
import XCTest
#if canImport(Glibc)
    import Glibc
#endif
@testable import LoRANAS

final class SafeTensorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loranas-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A file with the given header text and `dataBytes` bytes of payload.
    func file(_ name: String, header: String, dataBytes: Int = 0, lengthField: UInt64? = nil) -> String {
        var d = Data()
        let h = Array(header.utf8)
        withUnsafeBytes(of: (lengthField ?? UInt64(h.count)).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: h)
        d.append(contentsOf: [UInt8](repeating: 0, count: dataBytes))
        let p = dir.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: p, contents: d)
        return p
    }

    func assertFormatError(_ path: String, contains needle: String, file: StaticString = #filePath, line: UInt = #line)
    {
        XCTAssertThrowsError(try SafeTensorsFile(path: path), file: file, line: line) { e in
            guard case .format(let m) = e as? LoRANASError else {
                return XCTFail("expected a format error, got \(e)", file: file, line: line)
            }
            XCTAssert(m.contains(needle), "message '\(m)' should mention '\(needle)'", file: file, line: line)
        }
    }

    func testRoundTripF32AndI64WithMetadata() throws {
        var rng = TestRNG(1)
        let a = rng.tensor([3, 5]), path = dir.appendingPathComponent("x.safetensors").path
        try SafeTensorsWriter.write(
            [("a", .f32(a)), ("ids", .i64([1, -2, 3], shape: [3]))], metadata: ["format": "pt"], to: path)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.names, ["a", "ids"])
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(try f.tensor("a").array, a.array)
        XCTAssertEqual(try f.ints("ids"), [1, -2, 3])
        XCTAssertThrowsError(try f.tensor("missing")) {
            XCTAssertEqual($0 as? LoRANASError, .notFound("tensor missing in \(path)"))
        }
    }

    func testBF16AndF16ConvertToF32() throws {
        // bf16 0x3FC0 = 1.5, 0xC020 = -2.5; f16 0x3C00 = 1.0, 0xC500 = -5.0
        var d = Data()
        let h =
            #"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"#
                + #""h":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}"#
        withUnsafeBytes(of: UInt64(h.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(h.utf8))
        for v: UInt16 in [0x3FC0, 0xC020, 0x3C00, 0xC500] {
            withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) }
        }
        let p = dir.appendingPathComponent("half.safetensors").path
        FileManager.default.createFile(atPath: p, contents: d)
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(try f.tensor("b").array, [1.5, -2.5])
        XCTAssertEqual(try f.tensor("h").array, [1.0, -5.0])
    }

    func testShardedIndex() throws {
        let a = Tensor([1, 2], shape: [2]), b = Tensor([3], shape: [1])
        try SafeTensorsWriter.write([("a", .f32(a))], to: dir.appendingPathComponent("m-1.safetensors").path)
        try SafeTensorsWriter.write([("b", .f32(b))], to: dir.appendingPathComponent("m-2.safetensors").path)
        let index = #"{"metadata":{"total_size":12},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors"}}"#
        try index.write(
            to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        for path in [dir.path, dir.appendingPathComponent("model.safetensors.index.json").path] {
            let c = try Checkpoint(path: path)
            XCTAssertEqual(Set(c.names), ["a", "b"])
            XCTAssertEqual(try c.tensor("b").array, [3])
        }
        // An index naming a tensor its shard lacks is an error, not a silent miss.
        let bad = #"{"weight_map":{"a":"m-1.safetensors","c":"m-1.safetensors"}}"#
        try bad.write(to: dir.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Checkpoint(path: dir.path)) { XCTAssert("\($0)".contains("does not contain")) }
    }

    // MARK: hostile files: each gives a clear format error, never a crash

    func testEmptyFile() {
        let p = dir.appendingPathComponent("empty.safetensors").path
        FileManager.default.createFile(atPath: p, contents: Data())
        assertFormatError(p, contains: "empty file")
    }

    func testHeaderLengthPastEndOfFile() {
        assertFormatError(file("long.safetensors", header: "{}", lengthField: 1 << 40), contains: "past the end")
        assertFormatError(file("long2.safetensors", header: "{}", lengthField: 3), contains: "past the end")
        assertFormatError(file("huge.safetensors", header: "{}", lengthField: UInt64.max), contains: "past the end")
    }

    func testOffsetsOutOfRange() {
        let h = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        assertFormatError(file("oob.safetensors", header: h, dataBytes: 8), contains: "out of range")
        let neg = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#
        assertFormatError(file("neg.safetensors", header: neg, dataBytes: 8), contains: "out of range")
    }

    func testOverlappingTensors() {
        let h =
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
                + #""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertFormatError(file("overlap.safetensors", header: h, dataBytes: 12), contains: "overlap")
    }

    func testShapeTimesDtypeMismatch() {
        let h = #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        assertFormatError(file("size.safetensors", header: h, dataBytes: 8), contains: "needs 12 bytes")
    }

    func testShapeWhoseByteCountOverflows() {
        let h = #"{"a":{"dtype":"F64","shape":[2147483648,2147483648,4],"data_offsets":[0,8]}}"#
        assertFormatError(file("overflow.safetensors", header: h, dataBytes: 8), contains: "too large")
    }

    func testUnknownDtype() {
        let h = #"{"a":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}"#
        assertFormatError(file("dtype.safetensors", header: h, dataBytes: 1), contains: "unknown dtype F8_E9")
    }

    func testMalformedJSON() {
        assertFormatError(
            file("json.safetensors", header: #"{"a":{"dtype":"F32","shape":[1]"#), contains: "malformed JSON")
        assertFormatError(file("notobj.safetensors", header: "[1,2]"), contains: "not a JSON object")
    }

    func testDuplicateNames() {
        let h =
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
                + #""a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        assertFormatError(file("dup.safetensors", header: h, dataBytes: 8), contains: "duplicate key \"a\"")
    }

    func testJSONNonFiniteNumbersRoundTripAsPythonWritesThem() throws {
        let j = JSON.object([
            ("a", .number(.infinity)), ("b", .number(-.infinity)), ("c", .number(.nan)), ("d", .number(1.5)),
        ])
        XCTAssertEqual(j.serialized, #"{"a":Infinity,"b":-Infinity,"c":NaN,"d":1.5}"#)
        let back = try JSON.parse(j.serialized)
        XCTAssertEqual(back["a"]?.double, .infinity)
        XCTAssertEqual(back["b"]?.double, -.infinity)
        XCTAssert(back["c"]!.double!.isNaN)
    }

    func testMissingFileIsNotFound() {
        XCTAssertThrowsError(try Checkpoint(path: dir.appendingPathComponent("nope").path)) {
            guard case .notFound = $0 as? LoRANASError else { return XCTFail("\($0)") }
        }
    }

    func testAtomicWriteLeavesNoTemporaryFiles() throws {
        let p = dir.appendingPathComponent("out.safetensors").path
        try SafeTensorsWriter.write([("a", .f32(Tensor([1], shape: [1])))], to: p)
        try SafeTensorsWriter.write([("a", .f32(Tensor([2], shape: [1])))], to: p)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out.safetensors"])
        XCTAssertEqual(try SafeTensorsFile(path: p).tensor("a").array, [2])
    }

    /// Opens `path` on a background thread and waits at most 10 s, so a regression that blocks in
    /// open(2) on a FIFO fails instead of hanging; on a timeout it unblocks the reader by opening
    /// the FIFO for writing.
    func openWithTimeout(_ path: String, _ open: @escaping @Sendable (String) throws -> Void) -> Error? {
        final class Box: @unchecked Sendable { var error: Error? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try open(path) } catch { box.error = error }
            done.signal()
        }
        if done.wait(timeout: .now() + 10) == .timedOut {
            XCTFail("opening \(path) blocked for 10 s")
            let writer = Glibc.open(path, O_WRONLY | O_NONBLOCK)
            if writer >= 0 { Glibc.close(writer) }
            _ = done.wait(timeout: .now() + 10)
        }
        return box.error
    }

    func assertNotRegular(_ error: Error?, _ kind: String, file: StaticString = #filePath, line: UInt = #line) {
        guard case .io(let m) = error as? LoRANASError else {
            return XCTFail("expected an I/O error, got \(String(describing: error))", file: file, line: line)
        }
        XCTAssert(m.contains("is \(kind), not a regular file"), "message: \(m)", file: file, line: line)
    }

    func testFIFOIsRefusedWithoutBlocking() throws {
        let fifo = dir.appendingPathComponent("model.safetensors").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        assertNotRegular(openWithTimeout(fifo) { _ = try SafeTensorsFile(path: $0) }, "a FIFO")
        // The directory lookup finds model.safetensors by name and must refuse it the same way.
        assertNotRegular(openWithTimeout(dir.path) { _ = try Checkpoint(path: $0) }, "a FIFO")
    }

    func testDirectoryNamedModelSafetensorsIsRefused() throws {
        let sub = dir.appendingPathComponent("model.safetensors")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: false)
        assertNotRegular(openWithTimeout(sub.path) { _ = try SafeTensorsFile(path: $0) }, "a directory")
        assertNotRegular(openWithTimeout(dir.path) { _ = try Checkpoint(path: $0) }, "a directory")
    }

    func testDeviceIsRefused() {
        assertNotRegular(openWithTimeout("/dev/zero") { _ = try SafeTensorsFile(path: $0) }, "a device")
    }

    func testInMemoryFileMatchesTheMappedOne() throws {
        let p = file("m.safetensors", header: #"{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 8)
        let data = try XCTUnwrap(FileManager.default.contents(atPath: p))
        let mem = try data.withUnsafeBytes { try SafeTensorsFile(bytes: $0, name: "mem") }
        let mapped = try SafeTensorsFile(path: p)
        XCTAssertEqual(mem.tensors, mapped.tensors)
        XCTAssertEqual(try mem.ints("a"), [0, 0])
        XCTAssertThrowsError(try Data([1, 2, 3]).withUnsafeBytes { try SafeTensorsFile(bytes: $0, name: "short") }) {
            guard case .format(let m) = $0 as? LoRANASError else { return XCTFail("\($0)") }
            XCTAssert(m.hasPrefix("short: "), m)
        }
    }

    func testAtomicWriteRemovesStaleTemporariesOfDeadProcesses() throws {
        // A pid that is certainly dead: a child that has exited and been reaped.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = child.processIdentifier
        let prefix = AtomicFile.tempPrefix("out.safetensors")
        let stale = prefix + "\(dead)-12345"
        let mine = prefix + "\(getpid())-777"  // a write in progress on another thread
        let live = prefix + "1-42"  // pid 1 is alive
        let other = AtomicFile.tempPrefix("other.safetensors") + "\(dead)-5"  // another target's
        let odd = prefix + "notapid"
        for name in [stale, mine, live, other, odd] {
            let path = dir.appendingPathComponent(name).path
            XCTAssert(FileManager.default.createFile(atPath: path, contents: Data([1])))
        }
        let p = dir.appendingPathComponent("out.safetensors").path
        try SafeTensorsWriter.write([("a", .f32(Tensor([2], shape: [1])))], to: p)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
        XCTAssertEqual(left, [mine, live, other, odd, "out.safetensors"])
        XCTAssertEqual(try SafeTensorsFile(path: p).tensor("a").array, [2])
    }
}
