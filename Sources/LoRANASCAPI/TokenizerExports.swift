import CLoRANAS
import Foundation
import LoRANAS

typealias TokenizerHandle = Handle<Tokenizer>

@_cdecl("loranas_tokenizer_load")
public func loranas_tokenizer_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?)
    -> Int32
{
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        out.pointee = TokenizerHandle.retain(try Tokenizer(path: try string(path, "path")))
    }
}

@_cdecl("loranas_tokenizer_free")
public func loranas_tokenizer_free(_ h: OpaquePointer?) { TokenizerHandle.release(h) }

@_cdecl("loranas_tokenizer_encode")
public func loranas_tokenizer_encode(
    _ h: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLen: Int64, _ addSpecial: Int32,
    _ ids: UnsafeMutablePointer<Int64>?, _ idsCapacity: Int64, _ outCount: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let tokenizer = try TokenizerHandle.borrow(h, "tok").value
        let outCount = try arg(outCount, "out_count")
        try require(textLen >= 0 && textLen <= Int64(Int32.max), "text_len must be in 0...2^31-1, got \(textLen)")
        try require(idsCapacity >= 0, "ids_capacity must be non-negative, got \(idsCapacity)")
        let bytes =
            textLen == 0 ? [] : Array(UnsafeRawBufferPointer(start: try arg(text, "text_utf8"), count: Int(textLen)))
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw LoRANASError.invalidArgument("text is not valid UTF-8")
        }
        let out = try tokenizer.encode(s, addSpecialTokens: addSpecial != 0)
        outCount.pointee = Int64(out.count)
        if ids == nil && idsCapacity == 0 { return }
        guard idsCapacity >= Int64(out.count) else {
            throw BufferTooSmall(
                needed: out.count, message: "ids holds \(idsCapacity) elements, \(out.count) needed")
        }
        let dst = try arg(ids, "ids")
        for (i, id) in out.enumerated() { dst[i] = Int64(id) }
    }
}

@_cdecl("loranas_tokenizer_decode")
public func loranas_tokenizer_decode(
    _ h: OpaquePointer?, _ ids: UnsafePointer<Int64>?, _ count: Int64, _ skipSpecial: Int32,
    _ buf: UnsafeMutablePointer<CChar>?, _ bufLen: Int64, _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let tokenizer = try TokenizerHandle.borrow(h, "tok").value
        try require(count >= 0 && count <= Int64(Int32.max), "count must be in 0...2^31-1, got \(count)")
        let list = count == 0 ? [] : Array(UnsafeBufferPointer(start: try arg(ids, "ids"), count: Int(count)))
        for (i, id) in list.enumerated() where id < 0 || id > Int64(UInt32.max) {
            throw LoRANASError.invalidArgument("ids[\(i)] = \(id) is not a token id (0...2^32-1)")
        }
        let text = tokenizer.decode(list.map { Int($0) }, skipSpecialTokens: skipSpecial != 0)
        try copyCString(text, into: buf, capacity: bufLen, needed: outLen)
    }
}

@_cdecl("loranas_tokenizer_vocab_size")
public func loranas_tokenizer_vocab_size(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let out = try arg(out, "out_size")
        out.pointee = Int64(try TokenizerHandle.borrow(h, "tok").value.vocabSize)
    }
}

@_cdecl("loranas_tokenizer_token_to_id")
public func loranas_tokenizer_token_to_id(
    _ h: OpaquePointer?, _ token: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let tokenizer = try TokenizerHandle.borrow(h, "tok").value
        let out = try arg(out, "out_id")
        out.pointee = Int64(tokenizer.tokenToId(try string(token, "token")) ?? -1)
    }
}
