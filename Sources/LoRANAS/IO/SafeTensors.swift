import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Element types of the safetensors format.
public enum DType: String, Sendable, CaseIterable {
    case F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }
}

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Sendable, Equatable {
    /// The tensor's name in the header.
    public let name: String
    /// Its element type.
    public let dtype: DType
    /// Its dimensions (empty for a scalar).
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let begin: Int, end: Int
    /// The number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// The size of its data in bytes.
    public var byteCount: Int { end - begin }
}

/// A memory-mapped safetensors file whose header has been validated in full.
///
/// Hostile files throw `LoRANASError.format` naming the problem: a header past the end of the
/// file, malformed JSON, duplicate names, unknown dtypes, byte ranges out of bounds, overlapping
/// or inconsistent with shape × dtype. A path that is not a regular file (a FIFO, a directory,
/// a device) is refused with `LoRANASError.io` before it is opened, so a FIFO cannot block the
/// open forever.
///
/// The tensor data is read through a private `mmap` of the file. As with the safetensors
/// project's own mmap reader, a file that another process truncates while it is open makes the
/// next access to the vanished pages raise SIGBUS; the engine's own writers never truncate in
/// place (they write a temporary file and rename it over the target).
public final class SafeTensorsFile: @unchecked Sendable {
    /// The file's path (or the name given to the in-memory initializer).
    public let path: String
    /// Every tensor's entry, in header order.
    public let tensors: [TensorInfo]
    /// The header's `__metadata__` strings.
    public let metadata: [String: String]
    private let index: [String: Int]
    private let bytes: MappedBytes
    private var base: UnsafeRawPointer { bytes.base }
    private let dataStart: Int

    /// The largest header accepted (the format's reference implementation uses 100 MB).
    static let maxHeaderBytes = 100_000_000

    /// Maps and validates the safetensors file at `path`.
    public convenience init(path: String) throws {
        try self.init(path: path, bytes: try MappedBytes(mapping: path))
    }

    /// Validates a safetensors file held in memory (the bytes are copied); `name` stands in for
    /// the path in messages. The fuzz target and tests use it to skip the file system.
    convenience init(bytes: UnsafeRawBufferPointer, name: String) throws {
        try self.init(path: name, bytes: MappedBytes(copying: bytes))
    }

    private init(path: String, bytes: MappedBytes) throws {
        self.path = path
        self.bytes = bytes
        let size = bytes.count
        do {
            guard size >= 8 else {
                let what = size == 0 ? "empty file" : "file of \(size) bytes is shorter than the 8-byte header length"
                throw LoRANASError.format(what)
            }
            let raw = UInt64(littleEndian: bytes.base.loadUnaligned(as: UInt64.self))
            guard raw > 0, raw <= UInt64(Self.maxHeaderBytes), raw <= UInt64(size - 8) else {
                throw LoRANASError.format("header length \(raw) runs past the end of the \(size)-byte file")
            }
            let n = Int(raw)
            dataStart = 8 + n
            let header = try JSON.parse(UnsafeRawBufferPointer(start: bytes.base + 8, count: n))
            (tensors, metadata) = try Self.validate(header, dataBytes: size - dataStart, path: path)
            index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
        } catch {
            if let e = error as? LoRANASError, case .format(let msg) = e, !msg.hasPrefix(path) {
                throw LoRANASError.format("\(path): \(msg)")
            }
            throw error
        }
    }

    private static func validate(_ header: JSON, dataBytes: Int,
                                 path: String) throws -> ([TensorInfo], [String: String]) {
        guard let entries = header.object else { throw LoRANASError.format("header is not a JSON object") }
        var infos: [TensorInfo] = []
        var metadata: [String: String] = [:]
        for (name, value) in entries {
            if name == "__metadata__" {
                guard let kv = value.object else { throw LoRANASError.format("__metadata__ is not an object") }
                for (k, v) in kv {
                    guard let s = v.string else { throw LoRANASError.format("__metadata__[\(k)] is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard value.object != nil else { throw LoRANASError.format("entry \(name) is not an object") }
            guard let ds = value["dtype"]?.string else { throw LoRANASError.format("tensor \(name) has no dtype") }
            guard let dtype = DType(rawValue: ds) else {
                throw LoRANASError.format("tensor \(name) has unknown dtype \(ds)")
            }
            guard let dims = value["shape"]?.array else { throw LoRANASError.format("tensor \(name) has no shape") }
            let shape = try dims.map { d -> Int in
                guard let v = d.int, v >= 0, v < (1 << 40) else {
                    throw LoRANASError.format("tensor \(name) has a bad dimension in its shape")
                }
                return v
            }
            guard let offs = value["data_offsets"]?.array, offs.count == 2,
                  let begin = offs[0].int, let end = offs[1].int else {
                throw LoRANASError.format("tensor \(name) has no valid data_offsets")
            }
            guard begin >= 0, begin <= end, end <= dataBytes else {
                throw LoRANASError.format(
                    "tensor \(name) data_offsets [\(begin), \(end)] out of range (data section is \(dataBytes) bytes)")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            let (bytes, overflow2) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, !overflow2 else {
                throw LoRANASError.format("tensor \(name): shape \(shape) is too large")
            }
            guard bytes == end - begin else {
                throw LoRANASError.format(
                    "tensor \(name): shape \(shape) × \(dtype.rawValue) needs \(bytes) bytes "
                        + "but data_offsets span \(end - begin)")
            }
            infos.append(TensorInfo(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        let sorted = infos.filter { $0.byteCount > 0 }.sorted { $0.begin < $1.begin }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.begin < a.end {
            throw LoRANASError.format("tensors \(a.name) and \(b.name) overlap in the data section")
        }
        return (infos, metadata)
    }

    /// Tensor names in header order.
    public var names: [String] { tensors.map(\.name) }

    /// The entry of tensor `name`; throws `notFound` if the file has none.
    public func info(_ name: String) throws -> TensorInfo {
        guard let i = index[name] else { throw LoRANASError.notFound("tensor \(name) in \(path)") }
        return tensors[i]
    }

    /// The raw bytes of tensor `name` inside the mapping (valid while this file is alive).
    public func bytes(_ info: TensorInfo) -> UnsafeRawPointer { base + dataStart + info.begin }

    /// Tensor `name` converted to Float32.
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        let t = Tensor(zeros: info.shape)
        try convert(info, to: t.ptr)
        return t
    }

    /// Tensor `name` as 64-bit integers (integer dtypes only).
    public func ints(_ name: String) throws -> [Int] {
        let info = try info(name)
        let p = bytes(info)
        switch info.dtype {
        case .I64:
            return (0..<info.count).map {
                Int(Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)))
            }
        case .I32:
            return (0..<info.count).map {
                Int(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)))
            }
        case .I16: return (0..<info.count).map { Int(p.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
        case .I8: return (0..<info.count).map { Int(p.load(fromByteOffset: $0, as: Int8.self)) }
        case .U8, .BOOL: return (0..<info.count).map { Int(p.load(fromByteOffset: $0, as: UInt8.self)) }
        default: throw LoRANASError.invalidArgument("tensor \(name) is \(info.dtype.rawValue), not an integer type")
        }
    }

    /// Converts any numeric dtype to Float32 into `out` (info.count elements).
    public func convert(_ info: TensorInfo, to out: UnsafeMutablePointer<Float>) throws {
        let p = bytes(info), n = info.count
        switch info.dtype {
        case .F32: memcpy(out, p, n * 4)
        case .BF16:
            for i in 0..<n {
                out[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .F16:
            for i in 0..<n {
                out[i] = Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .F64: for i in 0..<n { out[i] = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        default: for (i, v) in try ints(info.name).enumerated() { out[i] = Float(v) }
        }
    }
}

/// A checkpoint: one safetensors file, a sharded set named by `model.safetensors.index.json`,
/// or a directory holding either.
public final class Checkpoint: @unchecked Sendable {
    /// The path it was opened from.
    public let path: String
    /// Its safetensors files (one, or the shards in index order).
    public let files: [SafeTensorsFile]
    /// The single file's metadata, or the index's `metadata` object.
    public let metadata: [String: String]
    /// Tensor names in file order.
    public let names: [String]
    private let location: [String: (file: Int, info: TensorInfo)]

    /// Opens a safetensors file, a `model.safetensors.index.json`, or a directory holding either
    /// (or holding exactly one `.safetensors` file).
    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw LoRANASError.notFound("no such file or directory: \(path)")
        }
        var filePath = path
        if isDir.boolValue {
            let dir = URL(fileURLWithPath: path)
            let index = dir.appendingPathComponent("model.safetensors.index.json").path
            let single = dir.appendingPathComponent("model.safetensors").path
            if FileManager.default.fileExists(atPath: index) { filePath = index }
            else if FileManager.default.fileExists(atPath: single) { filePath = single }
            else {
                let listing = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let st = listing.filter { $0.hasSuffix(".safetensors") }.sorted()
                guard st.count == 1 else {
                    throw LoRANASError.notFound(
                        "\(path) holds no model.safetensors, model.safetensors.index.json or single .safetensors file")
                }
                filePath = dir.appendingPathComponent(st[0]).path
            }
        }
        if filePath.hasSuffix(".json") {
            let (files, meta) = try Self.openShards(indexPath: filePath)
            self.files = files
            self.metadata = meta
        } else {
            let f = try SafeTensorsFile(path: filePath)
            self.files = [f]
            self.metadata = f.metadata
        }
        var loc: [String: (Int, TensorInfo)] = [:]
        var names: [String] = []
        for (fi, f) in files.enumerated() {
            for t in f.tensors {
                if let prev = loc[t.name] {
                    throw LoRANASError.format("tensor \(t.name) appears in both \(files[prev.0].path) and \(f.path)")
                }
                loc[t.name] = (fi, t)
                names.append(t.name)
            }
        }
        self.location = loc
        self.names = names
    }

    private static func openShards(indexPath: String) throws -> ([SafeTensorsFile], [String: String]) {
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            throw LoRANASError.io("cannot read \(indexPath)")
        }
        let json: JSON
        do {
            json = try JSON.parse(data)
        } catch let e as LoRANASError {
            throw LoRANASError.format("\(indexPath): \(e)")
        }
        guard let map = json["weight_map"]?.object else {
            throw LoRANASError.format("\(indexPath): no weight_map object")
        }
        let dir = URL(fileURLWithPath: indexPath).deletingLastPathComponent()
        var order: [String] = []
        var wanted: [String: [String]] = [:]
        for (name, file) in map {
            guard let f = file.string, !f.contains("/"), !f.isEmpty else {
                throw LoRANASError.format("\(indexPath): weight_map[\(name)] is not a file name in the same directory")
            }
            if wanted[f] == nil { order.append(f) }
            wanted[f, default: []].append(name)
        }
        let files = try order.map { try SafeTensorsFile(path: dir.appendingPathComponent($0).path) }
        for (f, file) in zip(order, files) {
            let have = Set(file.names)
            if let missing = wanted[f, default: []].first(where: { !have.contains($0) }) {
                throw LoRANASError.format("\(indexPath) lists \(missing) in \(f), which does not contain it")
            }
        }
        var meta: [String: String] = [:]
        for (k, v) in json["metadata"]?.object ?? [] { meta[k] = v.string ?? v.serialized }
        return (files, meta)
    }

    /// Whether any file holds tensor `name`.
    public func contains(_ name: String) -> Bool { location[name] != nil }

    /// The entry of tensor `name`; throws `notFound` if no file has it.
    public func info(_ name: String) throws -> TensorInfo {
        guard let l = location[name] else { throw LoRANASError.notFound("tensor \(name) in \(path)") }
        return l.info
    }

    /// Tensor `name` converted to Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let l = location[name] else { throw LoRANASError.notFound("tensor \(name) in \(path)") }
        return try files[l.file].tensor(name)
    }

    /// Reads `name` into `out`, checking that it has exactly `count` elements.
    public func read(_ name: String, into out: UnsafeMutablePointer<Float>, count: Int) throws {
        guard let l = location[name] else { throw LoRANASError.notFound("tensor \(name) in \(path)") }
        guard l.info.count == count else {
            throw LoRANASError.invalidArgument(
                "tensor \(name) has \(l.info.count) elements (shape \(l.info.shape)), buffer holds \(count)")
        }
        try files[l.file].convert(l.info, to: out)
    }

    /// Tensor `name` as bfloat16 bit patterns: a BF16 tensor copied as stored, any other float dtype rounded
    /// to nearest even (through float32), as `read` would widen it.
    public func readBFloat16(_ name: String, into out: UnsafeMutablePointer<UInt16>, count: Int) throws {
        guard let l = location[name] else { throw LoRANASError.notFound("tensor \(name) in \(path)") }
        guard l.info.count == count else {
            throw LoRANASError.invalidArgument(
                "tensor \(name) has \(l.info.count) elements (shape \(l.info.shape)), buffer holds \(count)")
        }
        if l.info.dtype == .BF16 {
            memcpy(out, files[l.file].bytes(l.info), count * 2)
            return
        }
        let wide = Tensor(uninitialized: [count])
        try files[l.file].convert(l.info, to: wide.ptr)
        for i in 0..<count { out[i] = bfloat16Bits(wide.ptr[i]) }
    }

    /// Tensor `name` as 64-bit integers (integer dtypes only).
    public func ints(_ name: String) throws -> [Int] {
        guard let l = location[name] else { throw LoRANASError.notFound("tensor \(name) in \(path)") }
        return try files[l.file].ints(name)
    }
}

/// Writes safetensors files atomically: to a temporary file in the same directory, then renamed.
public enum SafeTensorsWriter {
    /// One tensor's contents.
    public enum Payload {
        /// Float32 data with the tensor's shape.
        case f32(Tensor)
        /// Float32 data stored as bfloat16 (rounded to nearest, ties to even), with the tensor's shape.
        case bf16(Tensor)
        /// 64-bit integers with an explicit shape.
        case i64([Int], shape: [Int])
    }

    /// Writes `tensors` (names must be unique) and `metadata` to `path` through `AtomicFile`.
    public static func write(_ tensors: [(String, Payload)], metadata: [String: String] = [:], to path: String) throws {
        var header: [(String, JSON)] = []
        if !metadata.isEmpty {
            let entries = metadata.sorted { $0.key < $1.key }.map { ($0.key, JSON.string($0.value)) }
            header.append(("__metadata__", .object(entries)))
        }
        var offset = 0
        var seen = Set<String>()
        for (name, p) in tensors {
            guard seen.insert(name).inserted else {
                throw LoRANASError.invalidArgument("duplicate tensor name \(name)")
            }
            let (dtype, shape, bytes): (String, [Int], Int)
            switch p {
            case .f32(let t): (dtype, shape, bytes) = ("F32", t.shape, t.count * 4)
            case .bf16(let t): (dtype, shape, bytes) = ("BF16", t.shape, t.count * 2)
            case .i64(let v, let s):
                guard v.count == s.reduce(1, *) else {
                    throw LoRANASError.invalidArgument("\(name): \(v.count) values for shape \(s)")
                }
                (dtype, shape, bytes) = ("I64", s, v.count * 8)
            }
            let offsets: JSON = .array([.number(Double(offset)), .number(Double(offset + bytes))])
            let dims: JSON = .array(shape.map { .number(Double($0)) })
            header.append((name, .object([("dtype", .string(dtype)), ("shape", dims), ("data_offsets", offsets)])))
            offset += bytes
        }
        var headerBytes = Array(JSON.object(header).serialized.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var data = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: headerBytes)
        for (_, p) in tensors {
            switch p {
            case .f32(let t): data.append(UnsafeBufferPointer(start: t.ptr, count: t.count))
            case .bf16(let t):
                (0..<t.count).map { bfloat16Bits(t.ptr[$0]) }.withUnsafeBytes { data.append(contentsOf: $0) }
            case .i64(let v, _): v.map { Int64($0).littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) }
            }
        }
        try AtomicFile.write(data, to: path)
    }
}

/// The bfloat16 nearest to `x` (ties to even), as PyTorch's `x.to(torch.bfloat16)` rounds; NaN stays NaN.
func bfloat16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
    let rounded = bits &+ 0x7fff &+ ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: rounded >> 16)
}

/// Writes a file by writing a sibling temporary file, syncing it, and renaming it over the target,
/// so a crash never leaves a half-written file under the final name.
///
/// The temporary file is named `.<name>.tmp-<pid>-<random>` next to the target. A process killed
/// mid-write leaves one behind; the next write to the same target removes those whose process is
/// no longer alive.
public enum AtomicFile {
    /// Atomically replaces the file at `path` with `data`.
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let prefix = tempPrefix(url.lastPathComponent)
        removeStaleTemporaries(in: dir, prefix: prefix)
        let random = UInt32.random(in: 0...UInt32.max)
        let tmp = url.deletingLastPathComponent().appendingPathComponent("\(prefix)\(getpid())-\(random)").path
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw LoRANASError.io("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var ok = data.withUnsafeBytes { raw -> Bool in
            guard let start = raw.baseAddress else { return true }
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, start + off, raw.count - off)
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            let msg = String(cString: strerror(errno))
            unlink(tmp)
            throw LoRANASError.io("cannot write \(path): \(msg)")
        }
    }

    /// The name prefix of the temporary files for a target named `name`; the pid and a random
    /// number follow it.
    static func tempPrefix(_ name: String) -> String { ".\(name).tmp-" }

    /// Removes `<prefix><pid>-<random>` files in `dir` whose process no longer exists (kill(pid, 0)
    /// fails with ESRCH). Files of this process and of live processes are kept; errors are ignored,
    /// as the cleanup is best effort.
    static func removeStaleTemporaries(in dir: String, prefix: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0,
                  !rest[rest.index(after: dash)...].isEmpty, rest[rest.index(after: dash)...].allSatisfy(\.isNumber)
            else { continue }
            guard pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink(dir + "/" + name)
        }
    }
}
