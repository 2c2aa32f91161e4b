import Foundation

/// A search's supernets on disk, so that a warm-started fine-tune can run in another process:
/// one safetensors file holding each module's A (R, in), B (out, R) and α (choices) as
/// `<module>.lora_A`, `<module>.lora_B`, `<module>.arch_alpha`, and a `loranas_supernet` metadata
/// entry (JSON: per module its space, lora_alpha and slice mode). Written atomically.
public enum SupernetFile {
    static let metadataKey = "loranas_supernet"

    /// Writes `supernets` to `path` (a temporary file renamed into place).
    public static func save(_ supernets: [SupernetAdapter], to path: String) throws {
        guard !supernets.isEmpty else { throw LoRANASError.invalidArgument("no supernets to save") }
        let modules: [JSON] = supernets.map { s in
            .object([
                ("name", .string(s.module)), ("space", .array(s.space.map { .number(Double($0)) })),
                ("lora_alpha", .number(Double(s.loraAlpha))), ("slices", .string(s.slices.rawValue)),
            ])
        }
        let tensors = supernets.flatMap { s -> [(String, SafeTensorsWriter.Payload)] in
            [(s.a.name, .f32(s.a.value)), (s.b.name, .f32(s.b.value)), (s.logits.name, .f32(s.logits.value))]
        }
        let meta = JSON.object([("modules", .array(modules))]).serialized
        try World.current().onRankZero {
            try SafeTensorsWriter.write(tensors, metadata: [metadataKey: meta, "format": "pt"], to: path)
        }
    }

    /// One module's settings as the file records them.
    struct Entry {
        let name: String
        let space: [Int]
        let loraAlpha: Float
        let slices: SliceMode
    }

    /// The module list of a supernet file, each entry checked.
    static func entries(_ file: SafeTensorsFile, path: String) throws -> [Entry] {
        guard let text = file.metadata[metadataKey], let json = try? JSON.parse(text),
            let modules = json["modules"]?.array
        else {
            throw LoRANASError.format("\(path) is not a supernet file (no \(metadataKey) metadata)")
        }
        return try modules.map { m in
            guard let name = m["name"]?.string, let space = m["space"]?.array?.compactMap(\.int),
                let alpha = m["lora_alpha"]?.double, let slices = m["slices"]?.string.flatMap(SliceMode.init)
            else {
                throw LoRANASError.format("\(path): a supernet module entry is incomplete")
            }
            try require(
                !space.isEmpty && space.count <= 255 && space.allSatisfy { $0 > 0 && $0 <= RunLimits.maxRank }
                    && space == space.sorted() && Set(space).count == space.count,
                "\(path): \(name) has the space \(space), not distinct increasing ranks")
            try require(alpha > 0 && Float(alpha).isFinite, "\(path): \(name) has lora_alpha \(alpha)")
            return Entry(name: name, space: space, loraAlpha: Float(alpha), slices: slices)
        }
    }
}

extension MllamaModel {
    /// Attaches the supernets saved by `SupernetFile.save` (replacing any adapters), after checking
    /// every module name, shape and value; the model is unchanged when the file is refused.
    @discardableResult
    public func attachSupernets(from path: String) throws -> [SupernetAdapter] {
        let file = try SafeTensorsFile(path: path)
        let entries = try SupernetFile.entries(file, path: path)
        let byName = Dictionary(targetableLinears.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var rng = SplitMix64(seed: 0)  // A is overwritten below
        let made = try entries.map { e -> (LinearLayer, SupernetAdapter) in
            guard let l = byName[e.name] else {
                throw LoRANASError.notFound("\(path): \(e.name) is not a targetable linear of this model")
            }
            let s = SupernetAdapter(
                module: e.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, space: e.space,
                loraAlpha: e.loraAlpha, slices: e.slices, rng: &rng)
            for t in [s.a, s.b, s.logits] { try restore(t, from: file, path: path) }
            return (l, s)
        }
        removeAdapters()
        for (l, s) in made { l.adapter = s }
        return made.map(\.1)
    }

    private func restore(_ t: TrainableTensor, from file: SafeTensorsFile, path: String) throws {
        let saved = try file.tensor(t.name)
        guard saved.shape == t.value.shape else {
            throw LoRANASError.format("\(path): \(t.name) has shape \(saved.shape), expected \(t.value.shape)")
        }
        guard saved.isFinite else { throw LoRANASError.numeric("\(path): \(t.name) holds NaN or infinite values") }
        t.value.copy(from: saved)
    }
}
