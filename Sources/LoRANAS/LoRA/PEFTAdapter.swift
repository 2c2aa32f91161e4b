import Foundation

/// Reads and writes PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors) for
/// transformers' Mllama, with mixed ranks through `rank_pattern` / `alpha_pattern`.
public enum PEFTAdapter {
    /// One module's LoRA in a file.
    public struct Module {
        public let name: String
        public let rank: Int
        public let loraAlpha: Float
        public let a: Tensor  // (r, in)
        public let b: Tensor  // (out, r)
    }

    /// PEFT's LoraConfig default for a missing lora_alpha.
    public static let defaultLoraAlpha: Float = 8

    /// Writes `adapters` so that `PeftModel.from_pretrained` restores them exactly: every module
    /// is listed by its full name in target_modules, and rank_pattern / alpha_pattern name each
    /// module whose rank or alpha differs from the most common one by its escaped full path.
    public static func save(_ adapters: [LoRAAdapter], to dir: String, baseModel: String = "") throws {
        guard !adapters.isEmpty else { throw LoRANASError.invalidArgument("no LoRA adapters to save") }
        let config = configJSON(adapters, baseModel: baseModel)
        var tensors: [(String, SafeTensorsWriter.Payload)] = []
        for a in adapters {
            let base = "base_model.model." + PEFTNames.peft(a.module)
            tensors.append((base + ".lora_A.weight", .f32(a.a.value)))
            tensors.append((base + ".lora_B.weight", .f32(a.b.value)))
        }
        try World.current().onRankZero {
            try AtomicDirectory.write(dir) { staging in
                try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"],
                                            to: staging + "/adapter_model.safetensors")
                try AtomicFile.write(Data(config.serialized.utf8), to: staging + "/adapter_config.json")
            }
        }
    }

    /// adapter_config.json: r and lora_alpha are the most common values (ties: the first in
    /// model order); rank_pattern / alpha_pattern list the modules that differ.
    static func configJSON(_ adapters: [LoRAAdapter], baseModel: String) -> JSON {
        let r = mostCommon(adapters.map(\.rank)) ?? 8
        let alpha = mostCommon(adapters.map(\.loraAlpha)) ?? defaultLoraAlpha
        var rankPattern: [(String, JSON)] = []
        var alphaPattern: [(String, JSON)] = []
        for a in adapters {
            let key = PEFTNames.exactPattern(PEFTNames.peft(a.module))
            if a.rank != r { rankPattern.append((key, .number(Double(a.rank)))) }
            if a.loraAlpha != alpha { alphaPattern.append((key, .number(Double(a.loraAlpha)))) }
        }
        return .object([
            ("peft_type", .string("LORA")), ("task_type", .null), ("base_model_name_or_path", .string(baseModel)),
            ("r", .number(Double(r))), ("lora_alpha", .number(Double(alpha))),
            ("lora_dropout", .number(Double(adapters.first?.dropout ?? 0))),
            ("target_modules", .array(adapters.map { .string(PEFTNames.peft($0.module)) })),
            ("rank_pattern", .object(rankPattern)), ("alpha_pattern", .object(alphaPattern)),
            ("bias", .string("none")), ("fan_in_fan_out", .bool(false)), ("init_lora_weights", .bool(true)),
            ("use_rslora", .bool(false)), ("use_dora", .bool(false)), ("modules_to_save", .null),
            ("layers_to_transform", .null), ("layers_pattern", .null), ("inference_mode", .bool(true)),
            ("revision", .null), ("exclude_modules", .null),
        ])
    }

    /// The most frequent value, ties to the first reached.
    static func mostCommon<T: Hashable>(_ xs: [T]) -> T? {
        var counts: [T: Int] = [:]
        for x in xs { counts[x, default: 0] += 1 }
        var best: T? = nil
        var bestCount = 0
        for x in xs where (counts[x] ?? 0) > bestCount {
            best = x
            bestCount = counts[x] ?? 0
        }
        return best
    }

    /// Reads an adapter directory. Each module's rank comes from its tensors and must agree with
    /// what r / rank_pattern say for it (a mismatch is the "size mismatch" PEFT users hit);
    /// its lora_alpha comes from alpha_pattern or lora_alpha (PEFT's default 8 when absent).
    /// Non-finite alphas or weights are refused.
    public static func load(_ dir: String) throws -> [Module] {
        let config = try AdapterConfig(dir: dir)
        let file = try SafeTensorsFile(path: dir + "/adapter_model.safetensors")
        let pairs = try loraPairs(file)
        return try pairs.order.map { m in
            guard let a = pairs.a[m], let b = pairs.b[m], a.rank == 2, b.rank == 2 else {
                throw LoRANASError.format("adapter module \(m) needs both lora_A and lora_B matrices")
            }
            guard a.shape[0] == b.shape[1] else {
                throw LoRANASError.format(
                    "adapter module \(m): lora_A \(a.shape) and lora_B \(b.shape) disagree on the rank")
            }
            guard a.isFinite && b.isFinite else {
                throw LoRANASError.numeric("adapter module \(m) holds NaN or infinite weights")
            }
            let peftName = PEFTNames.peft(m)
            let expected = try config.rank(of: peftName)
            guard expected == a.shape[0] else {
                throw LoRANASError.format(
                    "adapter module \(m) has rank \(a.shape[0]) in its tensors but \(expected) "
                        + "from r / rank_pattern (size mismatch)")
            }
            return Module(name: m, rank: expected, loraAlpha: try config.loraAlpha(of: peftName), a: a, b: b)
        }
    }

    /// The lora_A and lora_B tensors of each module, in file order.
    private static func loraPairs(_ file: SafeTensorsFile) throws -> (
        order: [String], a: [String: Tensor], b: [String: Tensor]
    ) {
        var order: [String] = []
        var a: [String: Tensor] = [:]
        var b: [String: Tensor] = [:]
        for name in file.names {
            let stripped = name.replacingOccurrences(of: ".default.weight", with: ".weight")
            let isA = stripped.hasSuffix(".lora_A.weight")
            guard isA || stripped.hasSuffix(".lora_B.weight") else {
                throw LoRANASError.unsupported("adapter tensor \(name) is not a LoRA A or B weight")
            }
            let peft = String(stripped.dropLast(".lora_A.weight".count))
            guard let module = PEFTNames.checkpoint(peft) else {
                throw LoRANASError.format("adapter tensor \(name) names no Mllama module")
            }
            if a[module] == nil && b[module] == nil { order.append(module) }
            let t = try file.tensor(name)
            if isA { a[module] = t } else { b[module] = t }
        }
        return (order, a, b)
    }

}

/// adapter_config.json, checked: LoRA only, no DoRA/rsLoRA/bias/modules_to_save; r a positive
/// rank; lora_alpha and every pattern value finite and positive, pattern ranks integers.
struct AdapterConfig {
    let r: Int
    let loraAlpha: Float
    let rankPattern: [(NSRegularExpression, Double)]
    let alphaPattern: [(NSRegularExpression, Double)]

    init(dir: String) throws {
        let path = dir + "/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoRANASError.notFound("no adapter_config.json in \(dir)")
        }
        let json: JSON
        do { json = try JSON.parse(data) } catch { throw LoRANASError.format("\(path): \(error)") }
        try self.init(json: json)
    }

    init(json: JSON) throws {
        let c = ConfigReader(json: json, section: "adapter_config")
        try Self.checkSupported(json, c)
        guard let r = try c.int("r"), r > 0, r <= RunLimits.maxRank else {
            throw LoRANASError.format("adapter_config has no r in 1...\(RunLimits.maxRank)")
        }
        self.r = r
        let alpha = try c.double("lora_alpha") ?? Double(PEFTAdapter.defaultLoraAlpha)
        guard alpha.isFinite && alpha > 0 && Float(alpha).isFinite else {
            throw LoRANASError.format("adapter_config lora_alpha must be a positive number, got \(alpha)")
        }
        loraAlpha = Float(alpha)
        rankPattern = try Self.patterns(json["rank_pattern"], "rank_pattern")
        alphaPattern = try Self.patterns(json["alpha_pattern"], "alpha_pattern")
        for (re, v) in rankPattern where !(v == v.rounded() && v >= 1 && v <= Double(RunLimits.maxRank)) {
            throw LoRANASError.format("adapter_config rank_pattern[\(re.pattern)] = \(v) is not a rank")
        }
        for (re, v) in alphaPattern where !(v.isFinite && v > 0 && Float(v).isFinite) {
            throw LoRANASError.format("adapter_config alpha_pattern[\(re.pattern)] = \(v) is not a positive number")
        }
    }

    private static func checkSupported(_ json: JSON, _ c: ConfigReader) throws {
        if let t = try c.string("peft_type"), t != "LORA" {
            throw LoRANASError.unsupported("peft_type \(t) (only LORA)")
        }
        for flag in ["use_dora", "use_rslora", "fan_in_fan_out"] where json[flag]?.bool == true {
            throw LoRANASError.unsupported("adapter_config \(flag) = true")
        }
        if let bias = try c.string("bias"), bias != "none" {
            throw LoRANASError.unsupported("adapter_config bias = \"\(bias)\"")
        }
        if let m = json["modules_to_save"], !m.isNull, m.array?.isEmpty == false {
            throw LoRANASError.unsupported("adapter_config modules_to_save")
        }
    }

    func rank(of peftName: String) throws -> Int {
        guard let v = Self.match(rankPattern, peftName) else { return r }
        return Int(v)  // checked to be an integer in 1...maxRank
    }

    func loraAlpha(of peftName: String) throws -> Float {
        Self.match(alphaPattern, peftName).map(Float.init) ?? loraAlpha
    }

    static func patterns(_ json: JSON?, _ what: String) throws -> [(NSRegularExpression, Double)] {
        guard let json, !json.isNull else { return [] }
        guard let kv = json.object else { throw LoRANASError.format("adapter_config \(what) is not an object") }
        return try kv.map { key, value in
            guard let v = value.double else {
                throw LoRANASError.format("adapter_config \(what)[\(key)] is not a number")
            }
            do { return (try NSRegularExpression(pattern: "^(.*\\.)?(\(key))$"), v) } catch {
                throw LoRANASError.format("adapter_config \(what) key \(key) is not a valid regular expression")
            }
        }
    }

    /// PEFT's `get_pattern_key`: the first pattern matching the module name, suffix-anchored at a dot.
    static func match(_ patterns: [(NSRegularExpression, Double)], _ name: String) -> Double? {
        let range = NSRange(name.startIndex..., in: name)
        return patterns.first { $0.0.firstMatch(in: name, range: range) != nil }?.1
    }
}

extension MllamaModel {
    /// Loads a PEFT adapter directory onto the model (replacing any adapters).
    @discardableResult
    public func loadPEFTAdapter(_ dir: String) throws -> [LoRAAdapter] {
        let modules = try PEFTAdapter.load(dir)
        let byName = Dictionary(targetableLinears.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for m in modules {
            guard let l = byName[m.name] else {
                throw LoRANASError.notFound("adapter module \(m.name) is not a targetable linear of this model")
            }
            guard m.a.shape[1] == l.inFeatures, m.b.shape[0] == l.outFeatures else {
                throw LoRANASError.format(
                    "adapter module \(m.name): A \(m.a.shape), B \(m.b.shape) do not fit a "
                        + "\(l.inFeatures)→\(l.outFeatures) layer")
            }
        }
        removeAdapters()
        let byModule = Dictionary(modules.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let adapters = try attachLoRA(
            ranks: byModule.mapValues(\.rank),
            loraAlpha: { name, _ in byModule[name]?.loraAlpha ?? PEFTAdapter.defaultLoraAlpha },
            seed: 0)
        for a in adapters {
            guard let m = byModule[a.module] else { continue }
            a.a.value.copy(from: m.a)
            a.b.value.copy(from: m.b)
        }
        return adapters
    }
}
