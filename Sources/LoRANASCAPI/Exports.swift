import CLoRANAS
import Foundation
import LoRANAS

// The C ABI. Every function here is declared in include/loranas.h, and a test checks that the
// header and the exported symbols agree both ways.

@_cdecl("loranas_abi_version")
public func loranas_abi_version() -> Int32 { Int32(LORANAS_ABI_VERSION) }

private let versionString: UnsafePointer<CChar> = UnsafePointer(strdup(LoRANAS.version))

@_cdecl("loranas_version")
public func loranas_version() -> UnsafePointer<CChar> { versionString }

@_cdecl("loranas_last_error")
public func loranas_last_error() -> UnsafePointer<CChar> { lastErrorPointer() }

@_cdecl("loranas_set_num_threads")
public func loranas_set_num_threads(_ n: Int32) -> Int32 {
    guarded { try Engine.setThreads(Int(n)) }
}

@_cdecl("loranas_get_num_threads")
public func loranas_get_num_threads() -> Int32 { Int32(Engine.threads) }

@_cdecl("loranas_world")
public func loranas_world(
    _ rank: UnsafeMutablePointer<Int32>?, _ size: UnsafeMutablePointer<Int32>?,
    _ summary: UnsafeMutablePointer<CChar>?, _ summaryLen: Int64, _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let rank = try arg(rank, "rank"), size = try arg(size, "size")
        let world = try World.current()
        rank.pointee = Int32(clamping: world.rank)
        size.pointee = Int32(clamping: world.size)
        try copyCString(world.summary, into: summary, capacity: summaryLen, needed: outLen)
    }
}

@_cdecl("loranas_world_abort")
public func loranas_world_abort(_ message: UnsafePointer<CChar>?) {
    let text = message.map { String(cString: $0) } ?? "stopped"
    guard let world = try? World.current() else {
        FileHandle.standardError.write(Data("loranas: \(text)\n".utf8))
        exit(1)
    }
    world.abort(text)
}

// MARK: - checkpoints

typealias CheckpointHandle = Handle<Checkpoint>

@_cdecl("loranas_checkpoint_open")
public func loranas_checkpoint_open(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?)
    -> Int32
{
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        out.pointee = CheckpointHandle.retain(try Checkpoint(path: try string(path, "path")))
    }
}

@_cdecl("loranas_checkpoint_free")
public func loranas_checkpoint_free(_ h: OpaquePointer?) { CheckpointHandle.release(h) }

@_cdecl("loranas_checkpoint_count")
public func loranas_checkpoint_count(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let out = try arg(out, "out_count")
        out.pointee = Int64(try CheckpointHandle.borrow(h, "ckpt").value.names.count)
    }
}

@_cdecl("loranas_checkpoint_name")
public func loranas_checkpoint_name(
    _ h: OpaquePointer?, _ index: Int64, _ buf: UnsafeMutablePointer<CChar>?,
    _ bufLen: Int64, _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let names = try CheckpointHandle.borrow(h, "ckpt").value.names
        try require(index >= 0 && index < Int64(names.count), "index \(index) out of range 0..<\(names.count)")
        try copyCString(names[Int(index)], into: buf, capacity: bufLen, needed: outLen)
    }
}

/// Copies `s` NUL-terminated into a caller buffer, reporting the length needed.
func copyCString(
    _ s: String, into buf: UnsafeMutablePointer<CChar>?, capacity: Int64,
    needed: UnsafeMutablePointer<Int64>?
) throws {
    let bytes = Array(s.utf8)
    needed?.pointee = Int64(bytes.count)
    guard let buf, capacity > Int64(bytes.count) else { throw BufferTooSmall(needed: bytes.count + 1) }
    for (i, b) in bytes.enumerated() { buf[i] = CChar(bitPattern: b) }
    buf[bytes.count] = 0
}

/// The header's LORANAS_DTYPE_* code of each stored dtype.
private let dtypeCodes: [DType: Int32] = [
    .F32: Int32(LORANAS_DTYPE_F32), .F16: Int32(LORANAS_DTYPE_F16), .BF16: Int32(LORANAS_DTYPE_BF16),
    .I64: Int32(LORANAS_DTYPE_I64), .I32: Int32(LORANAS_DTYPE_I32), .F64: Int32(LORANAS_DTYPE_F64),
    .U8: Int32(LORANAS_DTYPE_U8), .I8: Int32(LORANAS_DTYPE_I8), .BOOL: Int32(LORANAS_DTYPE_BOOL),
    .I16: Int32(LORANAS_DTYPE_I16),
]

@_cdecl("loranas_checkpoint_info")
public func loranas_checkpoint_info(
    _ h: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ dtype: UnsafeMutablePointer<Int32>?,
    _ ndim: UnsafeMutablePointer<Int64>?, _ shape: UnsafeMutablePointer<Int64>?,
    _ shapeCapacity: Int64
) -> Int32 {
    guarded {
        let info = try CheckpointHandle.borrow(h, "ckpt").value.info(try string(name, "name"))
        let dtype = try arg(dtype, "out_dtype")
        let ndim = try arg(ndim, "out_ndim")
        ndim.pointee = Int64(info.shape.count)
        let shape = try buffer(shape, "out_shape", count: shapeCapacity, needed: info.shape.count)
        guard let code = dtypeCodes[info.dtype] else { throw LoRANASError.unsupported("dtype \(info.dtype)") }
        dtype.pointee = code
        for (i, d) in info.shape.enumerated() { shape[i] = Int64(d) }
    }
}

@_cdecl("loranas_checkpoint_read_f32")
public func loranas_checkpoint_read_f32(
    _ h: OpaquePointer?, _ name: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<Float>?, _ count: Int64
) -> Int32 {
    guarded {
        let ckpt = try CheckpointHandle.borrow(h, "ckpt")
        let name = try string(name, "name"), out = try arg(out, "out")
        try require(count >= 0, "count must be non-negative")
        try ckpt.with { try $0.read(name, into: out, count: Int(count)) }
    }
}

// MARK: - kernels

@_cdecl("loranas_matmul_f32")
public func loranas_matmul_f32(
    _ a: UnsafePointer<Float>?, _ aCount: Int64, _ b: UnsafePointer<Float>?, _ bCount: Int64,
    _ c: UnsafeMutablePointer<Float>?, _ cCount: Int64, _ m: Int64, _ k: Int64, _ n: Int64,
    _ transA: Int32, _ transB: Int32
) -> Int32 {
    guarded {
        try require(m >= 0 && k >= 0 && n >= 0, "dimensions must be non-negative, got m=\(m) k=\(k) n=\(n)")
        try require(m < Int32.max && k < Int32.max && n < Int32.max, "dimensions must fit in 32 bits")
        let (mi, ki, ni) = (Int(m), Int(k), Int(n))
        let a = try buffer(a, "a", count: aCount, needed: mi * ki)
        let b = try buffer(b, "b", count: bCount, needed: ki * ni)
        let c = try buffer(c, "c", count: cCount, needed: mi * ni)
        gemm(transA != 0, transB != 0, m: mi, n: ni, k: ki, a: a, b: b, c: c)
    }
}
