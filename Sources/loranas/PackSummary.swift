import Foundation
import LoRANAS

/// What `loranas inspect data.pack` prints: counts from the pack's index and its metadata.
struct PackSummary {
    let path: String
    let bytes: Int
    let metadata: PackMetadata
    let tokens: [Int]
    let images: Int

    init(path: String) throws {
        let reader = try PackReader(path: path)
        self.path = path
        bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        metadata = reader.metadata
        tokens = (0..<reader.count).map(reader.length)
        images = (0..<reader.count).map(reader.imageCount).reduce(0, +)
    }

    var json: JSON {
        let s = metadata.imageSettings
        return .object([
            ("path", .string(path)), ("bytes", .number(Double(bytes))),
            ("samples", .number(Double(tokens.count))), ("skipped", .number(Double(metadata.skippedCount))),
            ("tokens", .number(Double(tokens.reduce(0, +)))), ("min_tokens", .number(Double(tokens.min() ?? 0))),
            ("max_tokens", .number(Double(tokens.max() ?? 0))), ("images", .number(Double(images))),
            ("tile_size", .number(Double(s.tileSize))), ("max_image_tiles", .number(Double(s.maxImageTiles))),
            ("max_length", metadata.maxLength.map { .number(Double($0)) } ?? .null),
            ("vocab_size", .number(Double(metadata.vocabSize))), ("source", .string(metadata.source)),
            ("format_version", .number(Double(metadata.formatVersion))),
        ])
    }

    var text: String {
        let s = metadata.imageSettings
        let total = tokens.reduce(0, +)
        let mean = tokens.isEmpty ? 0 : Double(total) / Double(tokens.count)
        return """
            pack \(path) (format \(metadata.formatVersion), \(bytes) bytes), from \(metadata.source)
              samples   \(tokens.count) (\(metadata.skippedCount) skipped\(metadata.maxLength.map {
                  " at max_length \($0)" } ?? ""))
              tokens    \(total) (min \(tokens.min() ?? 0), mean \(String(format: "%.1f", mean)), \
            max \(tokens.max() ?? 0))
              images    \(images), tiles of \(s.tileSize) px, at most \(s.maxImageTiles) per image
              tokenizer \(metadata.vocabSize) tokens, <|image|> = \(metadata.imageTokenId), pad = \(
                  metadata.padTokenId.map(String.init) ?? "none")
            """
    }
}
