import Foundation

/// Reads and writes PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors) for
/// transformers' Mllama, with mixed ranks through `rank_pattern` / `alpha_pattern`.
public enum PEFTAdapter {
    /// One module's LoRA in a file: rank, lora_alpha, A (r, in), B (out, r).
    public struct Module { public let name: String; public let rank: Int; public let alpha: Float; public let a: Tensor; public let b: Tensor }

    /// Writes `adapters` so that `PeftModel.from_pretrained` restores them exactly: every module
    /// is listed by its full name in target_modules, and rank_pattern / alpha_pattern name each
    /// module whose rank or alpha differs from the most common one by its escaped full path.
    public static func save(_ adapters: [LoRAAdapter], to dir: String, baseModel: String = "") throws {
        guard !adapters.isEmpty else { throw LoRANASError.invalidArgument("no LoRA adapters to save") }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func mode<T: Hashable>(_ xs: [T]) -> T {
            var counts: [T: Int] = [:]
            for x in xs { counts[x, default: 0] += 1 }
            return xs.max { counts[$0]! < counts[$1]! }!     // ties: the first one reached in model order
        }
        let r = mode(adapters.map(\.rank)), alpha = mode(adapters.map(\.alpha))
        var rankPattern: [(String, JSON)] = [], alphaPattern: [(String, JSON)] = []
        for a in adapters {
            let key = PEFTNames.exactPattern(PEFTNames.peft(a.module))
            if a.rank != r { rankPattern.append((key, .number(Double(a.rank)))) }
            if a.alpha != alpha { alphaPattern.append((key, .number(Double(a.alpha)))) }
        }
        let dropout = adapters[0].dropout
        let config: JSON = .object([
            ("peft_type", .string("LORA")), ("task_type", .null), ("base_model_name_or_path", .string(baseModel)),
            ("r", .number(Double(r))), ("lora_alpha", .number(Double(alpha))), ("lora_dropout", .number(Double(dropout))),
            ("target_modules", .array(adapters.map { .string(PEFTNames.peft($0.module)) })),
            ("rank_pattern", .object(rankPattern)), ("alpha_pattern", .object(alphaPattern)),
            ("bias", .string("none")), ("fan_in_fan_out", .bool(false)), ("init_lora_weights", .bool(true)),
            ("use_rslora", .bool(false)), ("use_dora", .bool(false)), ("modules_to_save", .null),
            ("layers_to_transform", .null), ("layers_pattern", .null), ("inference_mode", .bool(true)),
            ("revision", .null), ("exclude_modules", .null),
        ])
        var tensors: [(String, SafeTensorsWriter.Payload)] = []
        for a in adapters {
            let base = "base_model.model." + PEFTNames.peft(a.module)
            tensors.append((base + ".lora_A.weight", .f32(a.a.value)))
            tensors.append((base + ".lora_B.weight", .f32(a.b.value)))
        }
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: dir + "/adapter_model.safetensors")
        try AtomicFile.write(Data(config.serialized.utf8), to: dir + "/adapter_config.json")
    }

    /// Reads an adapter directory. Each module's rank comes from its tensors and must agree with
    /// what r / rank_pattern say for it (a mismatch is the "size mismatch" PEFT users hit);
    /// its alpha comes from alpha_pattern or lora_alpha.
    public static func load(_ dir: String) throws -> [Module] {
        let configPath = dir + "/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else { throw LoRANASError.notFound("no adapter_config.json in \(dir)") }
        let json: JSON
        do { json = try JSON.parse(data) } catch { throw LoRANASError.format("\(configPath): \(error)") }
        let c = ConfigReader(json: json, section: "adapter_config")
        if let t = try c.string("peft_type"), t != "LORA" { throw LoRANASError.unsupported("peft_type \(t) (only LORA)") }
        for flag in ["use_dora", "use_rslora", "fan_in_fan_out"] where json[flag]?.bool == true {
            throw LoRANASError.unsupported("adapter_config \(flag) = true")
        }
        if let bias = try c.string("bias"), bias != "none" { throw LoRANASError.unsupported("adapter_config bias = \"\(bias)\"") }
        if let m = json["modules_to_save"], !m.isNull, m.array?.isEmpty == false { throw LoRANASError.unsupported("adapter_config modules_to_save") }
        guard let r = try c.int("r"), r > 0 else { throw LoRANASError.format("adapter_config has no positive r") }
        let alpha = Float(try c.double("lora_alpha") ?? Double(r))
        let rankPattern = try patterns(json["rank_pattern"], "rank_pattern")
        let alphaPattern = try patterns(json["alpha_pattern"], "alpha_pattern")

        let file = try SafeTensorsFile(path: dir + "/adapter_model.safetensors")
        var modules: [String: (a: Tensor?, b: Tensor?)] = [:]
        var order: [String] = []
        for name in file.names {
            let stripped = name.replacingOccurrences(of: ".default.weight", with: ".weight")
            let part: String
            if stripped.hasSuffix(".lora_A.weight") { part = "A" } else if stripped.hasSuffix(".lora_B.weight") { part = "B" } else {
                throw LoRANASError.unsupported("adapter tensor \(name) is not a LoRA A or B weight")
            }
            let peft = String(stripped.dropLast(".lora_A.weight".count))
            guard let module = PEFTNames.checkpoint(peft) else { throw LoRANASError.format("adapter tensor \(name) names no Mllama module") }
            if modules[module] == nil { order.append(module); modules[module] = (nil, nil) }
            if part == "A" { modules[module]!.a = try file.tensor(name) } else { modules[module]!.b = try file.tensor(name) }
        }
        return try order.map { m in
            guard let a = modules[m]!.a, let b = modules[m]!.b, a.rank == 2, b.rank == 2 else {
                throw LoRANASError.format("adapter module \(m) needs both lora_A and lora_B matrices")
            }
            guard a.shape[0] == b.shape[1] else { throw LoRANASError.format("adapter module \(m): lora_A \(a.shape) and lora_B \(b.shape) disagree on the rank") }
            let peftName = PEFTNames.peft(m)
            let expected = try match(rankPattern, peftName).map { Int($0) } ?? r
            guard expected == a.shape[0] else {
                throw LoRANASError.format("adapter module \(m) has rank \(a.shape[0]) in its tensors but \(expected) from r / rank_pattern (size mismatch)")
            }
            return Module(name: m, rank: expected, alpha: try match(alphaPattern, peftName).map(Float.init) ?? alpha, a: a, b: b)
        }
    }

    static func patterns(_ json: JSON?, _ what: String) throws -> [(NSRegularExpression, Double)] {
        guard let json, !json.isNull else { return [] }
        guard let kv = json.object else { throw LoRANASError.format("adapter_config \(what) is not an object") }
        return try kv.map { key, value in
            guard let v = value.double else { throw LoRANASError.format("adapter_config \(what)[\(key)] is not a number") }
            do { return (try NSRegularExpression(pattern: "^(.*\\.)?(\(key))$"), v) }
            catch { throw LoRANASError.format("adapter_config \(what) key \(key) is not a valid regular expression") }
        }
    }

    /// PEFT's `get_pattern_key`: the first pattern matching the module name, suffix-anchored at a dot.
    static func match(_ patterns: [(NSRegularExpression, Double)], _ name: String) throws -> Double? {
        let range = NSRange(name.startIndex..., in: name)
        return patterns.first { $0.0.firstMatch(in: name, range: range) != nil }?.1
    }
}

extension MllamaModel {
    /// Loads a PEFT adapter directory onto the model (replacing any adapters).
    @discardableResult
    public func loadPEFTAdapter(_ dir: String) throws -> [LoRAAdapter] {
        let modules = try PEFTAdapter.load(dir)
        let byName = Dictionary(uniqueKeysWithValues: targetableLinears.map { ($0.name, $0) })
        for m in modules {
            guard let l = byName[m.name] else { throw LoRANASError.notFound("adapter module \(m.name) is not a targetable linear of this model") }
            guard m.a.shape[1] == l.inFeatures, m.b.shape[0] == l.outFeatures else {
                throw LoRANASError.format("adapter module \(m.name): A \(m.a.shape), B \(m.b.shape) do not fit a \(l.inFeatures)→\(l.outFeatures) layer")
            }
        }
        removeAdapters()
        let ranks = Dictionary(uniqueKeysWithValues: modules.map { ($0.name, $0.rank) })
        let alphas = Dictionary(uniqueKeysWithValues: modules.map { ($0.name, $0.alpha) })
        let adapters = try attachLoRA(ranks: ranks, alpha: { name, _ in alphas[name]! }, seed: 0)
        let byModule = Dictionary(uniqueKeysWithValues: modules.map { ($0.name, $0) })
        for a in adapters {
            a.a.value.copy(from: byModule[a.module]!.a)
            a.b.value.copy(from: byModule[a.module]!.b)
        }
        return adapters
    }
}
