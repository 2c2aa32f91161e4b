import CLoRANAS
import Foundation
import LoRANAS

typealias DatasetHandle = Handle<Dataset>

@_cdecl("loranas_dataset_create")
public func loranas_dataset_create(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let config = try ModelHandle.borrow(h, "model").value.config
        out.pointee = DatasetHandle.retain(Dataset(config: config))
    }
}

@_cdecl("loranas_dataset_free")
public func loranas_dataset_free(_ h: OpaquePointer?) { DatasetHandle.release(h) }

@_cdecl("loranas_dataset_add")
public func loranas_dataset_add(_ h: OpaquePointer?, _ sample: UnsafePointer<loranas_batch>?) -> Int32 {
    guarded {
        let ds = try DatasetHandle.borrow(h, "dataset")
        let c = try arg(sample, "sample").pointee
        try require(c.batch_size == 1, "a sample is a batch of one, got batch_size \(c.batch_size)")
        try ds.value.append(Sample(batchOfOne: try makeBatch(c, config: ds.value.config)))
    }
}

@_cdecl("loranas_dataset_count")
public func loranas_dataset_count(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded { try arg(out, "out_count").pointee = Int64(try DatasetHandle.borrow(h, "dataset").value.count) }
}

@_cdecl("loranas_dataset_skipped")
public func loranas_dataset_skipped(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded { try arg(out, "out_skipped").pointee = Int64(try DatasetHandle.borrow(h, "dataset").value.skipped) }
}

@_cdecl("loranas_dataset_split")
public func loranas_dataset_split(
    _ h: OpaquePointer?, _ fraction: Double, _ seed: UInt64, _ outTrain: UnsafeMutablePointer<OpaquePointer?>?,
    _ outValidation: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    guarded {
        let outTrain = try arg(outTrain, "out_train")
        let outValidation = try arg(outValidation, "out_validation")
        outTrain.pointee = nil
        outValidation.pointee = nil
        let (train, validation) = try DatasetHandle.borrow(h, "dataset").value
            .split(validationFraction: fraction, seed: seed)
        outTrain.pointee = DatasetHandle.retain(train)
        outValidation.pointee = DatasetHandle.retain(validation)
    }
}

@_cdecl("loranas_dataset_sample")
public func loranas_dataset_sample(_ h: OpaquePointer?, _ index: Int64, _ out: UnsafeMutablePointer<loranas_sample>?)
    -> Int32
{
    guarded {
        let out = try arg(out, "out")
        let ds = try DatasetHandle.borrow(h, "dataset").value
        let sample = try ds.sample(Int(index))
        let v = ds.config.vision
        let dims = [sample.length, sample.numImages, v.maxNumTiles, v.numChannels, v.imageSize, v.imageSize]
        let given = [out.pointee.seq_len, out.pointee.num_images, out.pointee.num_tiles, out.pointee.channels,
                     out.pointee.height, out.pointee.width]
        guard out.pointee.input_ids != nil else {
            (out.pointee.seq_len, out.pointee.num_images, out.pointee.num_tiles) = (Int64(dims[0]), Int64(dims[1]),
                                                                                    Int64(dims[2]))
            (out.pointee.channels, out.pointee.height, out.pointee.width) = (Int64(dims[3]), Int64(dims[4]),
                                                                             Int64(dims[5]))
            return
        }
        try require(given == dims.map(Int64.init), "sample \(index) has dims \(dims), the buffers were sized for "
                        + "\(given); ask for the dims first (input_ids NULL)")
        try fill(out.pointee, with: sample)
    }
}

/// Copies `s` into the caller's buffers, whose dims were checked against it.
private func fill(_ out: loranas_sample, with s: Sample) throws {
    let ids = try arg(out.input_ids, "input_ids")
    let labels = try arg(out.labels, "labels")
    for (j, v) in s.inputIds.enumerated() { ids[j] = Int64(v) }
    for (j, v) in (s.labels ?? []).enumerated() { labels[j] = Int64(v) }
    guard s.numImages > 0, let px = s.pixelValues, let ar = s.aspectRatioIds, let am = s.aspectRatioMask,
        let cam = s.crossAttentionMask
    else { return }
    try arg(out.pixel_values, "pixel_values").update(from: px.ptr, count: px.count)
    let ratioIds = try arg(out.aspect_ratio_ids, "aspect_ratio_ids")
    let ratioMask = try arg(out.aspect_ratio_mask, "aspect_ratio_mask")
    let cross = try arg(out.cross_attention_mask, "cross_attention_mask")
    for (j, v) in ar.enumerated() { ratioIds[j] = Int64(v) }
    for (j, v) in am.enumerated() { ratioMask[j] = Int64(v) }
    for (j, v) in cam.enumerated() { cross[j] = Int64(v) }
}

@_cdecl("loranas_dataset_from_cauldron")
public func loranas_dataset_from_cauldron(
    _ modelDir: UnsafePointer<CChar>?, _ processor: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ maxLength: Int64,
    _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let directory = URL(fileURLWithPath: try string(modelDir, "model_dir"))
        let file = try CauldronFile(path: try string(path, "jsonl_path"))
        let dataset = try Dataset.cauldron(file: file, processor: try processorOrLoad(processor, directory),
                                           model: try ModelConfigFile(directory: directory),
                                           maxLength: try maxLengthArgument(maxLength))
        out.pointee = DatasetHandle.retain(dataset)
    }
}

@_cdecl("loranas_dataset_create_for_records")
public func loranas_dataset_create_for_records(
    _ modelDir: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> Int32 {
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        let directory = URL(fileURLWithPath: try string(modelDir, "model_dir"))
        out.pointee = DatasetHandle.retain(Dataset(model: try ModelConfigFile(directory: directory)))
    }
}

@_cdecl("loranas_dataset_add_record")
public func loranas_dataset_add_record(
    _ h: OpaquePointer?, _ processor: OpaquePointer?, _ recordJSON: UnsafePointer<CChar>?,
    _ images: UnsafePointer<loranas_image_input>?, _ numImages: Int64, _ maxLength: Int64,
    _ outKept: UnsafeMutablePointer<Int32>?
) -> Int32 {
    guarded {
        let outKept = try arg(outKept, "out_kept")
        outKept.pointee = 0
        let dataset = try DatasetHandle.borrow(h, "dataset").value
        let processor = try ProcessorHandle.borrow(processor, "processor").value
        let record = try CauldronRecord(json: try string(recordJSON, "record_json"))
        let decoded = try ImageInputs.grouped(images, count: numImages, batchSize: 1)[0]
        let encoder = try CauldronEncoder(processor: processor, maxLength: try maxLengthArgument(maxLength))
        guard let sample = try encoder.encode(record, images: decoded) else { return try dataset.addSkipped(1) }
        let encoding = encoder.encoding(source: "records", modelConfig: dataset.modelConfigText ?? "")
        try dataset.append(sample, encoding: encoding)
        outKept.pointee = 1
    }
}

@_cdecl("loranas_dataset_load")
public func loranas_dataset_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?)
    -> Int32
{
    guarded {
        let out = try arg(out, "out")
        out.pointee = nil
        out.pointee = DatasetHandle.retain(try Dataset.load(pack: try string(path, "pack_path")))
    }
}

@_cdecl("loranas_dataset_save")
public func loranas_dataset_save(_ h: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let path = try string(path, "pack_path")
        try DatasetHandle.borrow(h, "dataset").value.save(pack: path)
    }
}

/// The processor behind `handle`, or the one of `directory` when the handle is NULL.
private func processorOrLoad(_ handle: OpaquePointer?, _ directory: URL) throws -> MllamaProcessor {
    guard handle != nil else { return try MllamaProcessor.load(directory: directory) }
    return try ProcessorHandle.borrow(handle, "processor").value
}

/// A C `max_length`: 0 means none.
private func maxLengthArgument(_ n: Int64) throws -> Int? {
    try require(n >= 0 && n <= Int64(Int32.max), "max_length must be in 0...\(Int32.max) (0: none), got \(n)")
    return n == 0 ? nil : Int(n)
}
