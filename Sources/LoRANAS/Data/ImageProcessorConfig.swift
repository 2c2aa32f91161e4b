import Foundation

/// Reading `MllamaImageProcessorSettings` from a Hugging Face model directory.
extension MllamaImageProcessorSettings {
    /// The settings of the model in `directory`, looked up as transformers does:
    /// 1. a flat `preprocessor_config.json` (as published checkpoints have it);
    /// 2. otherwise the `image_processor` object of `processor_config.json` (as transformers 5 saves it);
    /// 3. otherwise `config.json`'s `vision_config` (`image_size`, `max_num_tiles`) with the class defaults.
    /// Image-processor settings that contradict `config.json`'s tile size or tile count are an error, and so
    /// are settings transformers refuses (`do_resize`/`do_pad` false, height ≠ width) or that loranas does
    /// not implement (another resample filter, `do_rescale`/`do_normalize`/`do_convert_rgb` false).
    public static func load(directory: URL) throws -> MllamaImageProcessorSettings {
        let vision = try visionConfig(directory)
        var settings = MllamaImageProcessorSettings()
        let flat = directory.appendingPathComponent("preprocessor_config.json")
        let nested = directory.appendingPathComponent("processor_config.json")
        var source: (JSON, String)?
        if FileManager.default.fileExists(atPath: flat.path) {
            source = (try Files.readJSON(flat.path), "preprocessor_config.json")
        } else if FileManager.default.fileExists(atPath: nested.path) {
            let json = try Files.readJSON(nested.path)
            guard let inner = json["image_processor"], inner.object != nil else {
                throw LoRANASError.format("processor_config.json has no image_processor object")
            }
            source = (inner, "processor_config.json image_processor")
        }
        if let (json, name) = source {
            try settings.read(ConfigReader(json: json, section: name))
            if let vision {
                try require(settings.tileSize == vision.imageSize && settings.maxImageTiles == vision.maxTiles,
                            "\(name) (size \(settings.tileSize), max_image_tiles \(settings.maxImageTiles)) "
                                + "contradicts config.json's vision_config (image_size \(vision.imageSize), "
                                + "max_num_tiles \(vision.maxTiles))")
            }
        } else if let vision {
            settings.tileSize = vision.imageSize
            settings.maxImageTiles = vision.maxTiles
        } else {
            throw LoRANASError.notFound(
                "no preprocessor_config.json, processor_config.json or config.json in \(directory.path)")
        }
        try settings.validate()
        return settings
    }

    private mutating func read(_ r: ConfigReader) throws {
        if let size = r.value("size") {
            if let side = size.int {
                tileSize = side
            } else {
                let s = ConfigReader(json: size, section: r.section + ".size")
                guard let h = try s.int("height"), let w = try s.int("width") else {
                    throw LoRANASError.format("\(r.section).size must have height and width, got \(size.serialized)")
                }
                try require(h == w, "\(r.section).size: height \(h) must equal width \(w) (transformers refuses it)")
                tileSize = h
            }
        }
        maxImageTiles = try r.int("max_image_tiles") ?? maxImageTiles
        imageMean = try Self.channels(r, "image_mean") ?? imageMean
        imageStd = try Self.channels(r, "image_std") ?? imageStd
        rescaleFactor = try r.double("rescale_factor") ?? rescaleFactor
        if let resample = try r.int("resample") {
            guard resample == 2 else {
                throw LoRANASError.unsupported("\(r.section).resample \(resample); only 2 (BILINEAR) is implemented")
            }
        }
        for key in ["do_resize", "do_pad", "do_rescale", "do_normalize", "do_convert_rgb"] {
            guard let v = r.value(key) else { continue }
            guard let flag = v.bool else { throw LoRANASError.format("\(r.section).\(key) must be true or false") }
            if !flag {
                throw LoRANASError.unsupported("\(r.section).\(key) = false (Mllama needs it; transformers "
                                                   + "refuses do_resize/do_pad = false)")
            }
        }
    }

    /// A list of 3 numbers, or one number for every channel.
    private static func channels(_ r: ConfigReader, _ key: String) throws -> [Double]? {
        guard let v = r.value(key) else { return nil }
        if let d = v.double { return [d, d, d] }
        let values = v.array?.compactMap(\.double) ?? []
        guard values.count == 3, v.array?.count == 3 else {
            throw LoRANASError.format("\(r.section).\(key) must be 3 numbers, got \(v.serialized)")
        }
        return values
    }

    private static func visionConfig(_ directory: URL) throws -> (imageSize: Int, maxTiles: Int)? {
        let url = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let json = try Files.readJSON(url.path)
        let defaults = MllamaVisionConfig()
        guard let v = json["vision_config"], v.object != nil else { return nil }
        let r = ConfigReader(json: v, section: "config.json vision_config")
        return (try r.int("image_size") ?? defaults.imageSize, try r.int("max_num_tiles") ?? defaults.maxNumTiles)
    }
}
