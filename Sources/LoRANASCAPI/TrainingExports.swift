import CLoRANAS
import Foundation
import LoRANAS

typealias ResultHandle = Handle<String>

@_cdecl("loranas_model_load_adapter")
public func loranas_model_load_adapter(_ h: OpaquePointer?, _ dir: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let dir = try string(dir, "dir")
        try ModelHandle.borrow(h, "model").with { _ = try $0.loadPEFTAdapter(dir) }
    }
}

@_cdecl("loranas_model_save_adapter")
public func loranas_model_save_adapter(_ h: OpaquePointer?, _ dir: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let dir = try string(dir, "dir")
        try ModelHandle.borrow(h, "model").with { m in
            try PEFTAdapter.save(m.loraAdapters, to: dir, baseModel: m.sourcePath ?? "")
        }
    }
}

@_cdecl("loranas_model_save_merged")
public func loranas_model_save_merged(
    _ h: OpaquePointer?, _ dir: UnsafePointer<CChar>?, _ dtype: UnsafePointer<CChar>?
) -> Int32 {
    guarded {
        let dir = try string(dir, "dir")
        let type = try weightDType(dtype)
        try ModelHandle.borrow(h, "model").with { try $0.saveMerged(to: dir, dtype: type) }
    }
}

@_cdecl("loranas_model_clear_adapters")
public func loranas_model_clear_adapters(_ h: OpaquePointer?) -> Int32 {
    guarded { try ModelHandle.borrow(h, "model").with { $0.removeAdapters() } }
}

public typealias ProgressFn = @convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Int32

func progressCallback(_ fn: ProgressFn?, _ user: UnsafeMutableRawPointer?) -> ProgressCallback? {
    guard let fn else { return nil }
    return { event in
        event.json.serialized.withCString { fn($0, user) } == 0 ? .more : .stop
    }
}

/// The shared shape of loranas_search, loranas_finetune and loranas_pretrain: borrow the handles, parse the
/// options, run the job under the model's lock with the progress callback, and hand back its JSON as a result
/// handle.
func runJob<Options>(
    _ h: OpaquePointer?, _ train: OpaquePointer?, _ val: OpaquePointer?, _ options: UnsafePointer<CChar>?,
    _ progress: ProgressFn?, _ user: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
    parse: (JSON) throws -> Options,
    job: (MllamaModel, Dataset, Dataset, Options, ProgressCallback?) throws -> JSON
) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let model = try ModelHandle.borrow(h, "model")
        let tr = try DatasetHandle.borrow(train, "train").value, va = try DatasetHandle.borrow(val, "validation").value
        let o = try parse(try OptionsJSON.parse(options))
        let result = try model.with { try job($0, tr, va, o, progressCallback(progress, user)) }
        out.pointee = ResultHandle.retain(result.serialized)
    }
}

@_cdecl("loranas_search")
public func loranas_search(
    _ h: OpaquePointer?, _ train: OpaquePointer?, _ val: OpaquePointer?, _ options: UnsafePointer<CChar>?,
    _ progress: ProgressFn?, _ user: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    runJob(h, train, val, options, progress, user, out, parse: OptionsJSON.search) {
        try $0.search(train: $1, validation: $2, options: $3, progress: $4).json
    }
}

@_cdecl("loranas_finetune")
public func loranas_finetune(
    _ h: OpaquePointer?, _ train: OpaquePointer?, _ val: OpaquePointer?, _ options: UnsafePointer<CChar>?,
    _ progress: ProgressFn?, _ user: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    runJob(h, train, val, options, progress, user, out, parse: OptionsJSON.finetune) {
        try $0.finetune(train: $1, validation: $2, options: $3, progress: $4).json
    }
}

@_cdecl("loranas_pretrain")
public func loranas_pretrain(
    _ h: OpaquePointer?, _ train: OpaquePointer?, _ val: OpaquePointer?, _ options: UnsafePointer<CChar>?,
    _ progress: ProgressFn?, _ user: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    runJob(h, train, val, options, progress, user, out, parse: OptionsJSON.pretrain) {
        try $0.pretrain(train: $1, validation: $2, options: $3, progress: $4).json
    }
}

@_cdecl("loranas_evaluate")
public func loranas_evaluate(
    _ h: OpaquePointer?, _ data: OpaquePointer?, _ batchSize: Int64, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let ds = try DatasetHandle.borrow(data, "dataset").value
        let limit = Int64(Evaluation.maxBatchSize)
        try require(batchSize > 0 && batchSize <= limit, "batch_size must be in 1...\(limit), got \(batchSize)")
        let e = try ModelHandle.borrow(h, "model").with { try $0.evaluate(ds, batchSize: Int(batchSize)) }
        out.pointee = ResultHandle.retain(e.json.serialized)
    }
}

@_cdecl("loranas_evaluate_answers")
public func loranas_evaluate_answers(
    _ h: OpaquePointer?, _ data: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let ds = try DatasetHandle.borrow(data, "dataset").value
        let result = try ModelHandle.borrow(h, "model").with { try $0.answerAccuracy(ds) }
        out.pointee = ResultHandle.retain(result.json.serialized)
    }
}

@_cdecl("loranas_result_json")
public func loranas_result_json(
    _ h: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ len: Int64, _ outLen: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded { try copyCString(try ResultHandle.borrow(h, "result").value, into: buf, capacity: len, needed: outLen) }
}

@_cdecl("loranas_result_free")
public func loranas_result_free(_ h: OpaquePointer?) { ResultHandle.release(h) }
