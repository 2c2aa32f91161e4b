import Foundation

/// The memory a config's parameters take, added up from `MllamaModel.specs` with overflow checks,
/// and a rough floor for the activations of the smallest batch (one sample, one image, one token).
struct ModelFootprint {
    /// Floats in one `ParameterSet` of the config, alignment padding included.
    let parameterFloats: Int
    /// The largest parameter, named in errors: it usually points at the field that is too big.
    let largest: (name: String, shape: [Int])
    /// At least this many bytes of activations for a forward pass.
    let activationFloorBytes: Double

    var parameterBytes: Double { Double(parameterFloats) * 4 }

    /// Throws a format error when the parameter count does not fit in `Int` bytes; the config's
    /// per-field limits (`MllamaConfig.Limit`) keep each shape product itself in range.
    init(_ config: MllamaConfig) throws {
        var total = 0, largest = ("", [Int]()), largestCount = 0
        for (name, shape) in MllamaModel.specs(config) {
            let count = Self.product(shape)
            let padded = count.flatMap { Self.sum($0, 15) }.map { $0 / 16 * 16 }
            if (count ?? Int.max) > largestCount { (largest, largestCount) = ((name, shape), count ?? Int.max) }
            guard let padded, let sum = Self.sum(total, padded), sum <= Int.max / 4 else {
                throw LoRANASError.format("config.json asks for more than \(formatBytes(Double(Int.max))) "
                                          + "of parameters (\(name) \(shape))")
            }
            total = sum
        }
        parameterFloats = total
        self.largest = largest
        activationFloorBytes = Self.activationFloor(config) * 4
    }

    /// Throws when the parameters and the activation floor do not fit in `available` bytes.
    func requireFits(available: Double?) throws {
        guard let available, parameterBytes + activationFloorBytes > available else { return }
        throw LoRANASError.invalidArgument(
            "config.json asks for \(formatBytes(parameterBytes)) of parameters (\(parameterFloats.formatted()) "
                + "floats; the largest is \(largest.name) \(largest.shape)) and at least "
                + "\(formatBytes(activationFloorBytes)) of activations; \(formatBytes(available)) are available")
    }

    /// Floats of the activations one sample with one image and one text token needs: the vision
    /// tower's widest rows and the exported features, the cross-attention states, and one text row.
    private static func activationFloor(_ c: MllamaConfig) -> Double {
        let v = c.vision, t = c.text
        let visionTokens = Double(v.maxNumTiles) * Double(v.paddedTokensPerTile)
        let vision = visionTokens * Double(v.visionOutputDim + v.intermediateSize + 6 * v.hiddenSize)
        let crossStates = Double(v.maxNumTiles) * Double(v.tokensPerTile) * Double(t.hiddenSize)
        let text = Double(t.vocabSize + 3 * t.intermediateSize + 6 * t.hiddenSize)
        return vision + crossStates + text
    }

    private static func product(_ shape: [Int]) -> Int? {
        var p = 1
        for d in shape {
            let (r, overflow) = p.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            p = r
        }
        return p
    }

    private static func sum(_ a: Int, _ b: Int) -> Int? {
        let (r, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : r
    }
}

/// Bytes this process may still allocate: MemAvailable from /proc/meminfo, lowered to the cgroup's
/// memory limit when that is smaller; the physical memory where neither can be read (macOS).
enum SystemMemory {
    static func availableBytes() -> Double {
        var limits: [Double] = []
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kb = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
            limits.append(kb * 1024)
        }
        // cgroup v2, then v1; "max" (v2) or a huge number (v1) means no limit.
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let bytes = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                limits.append(bytes)
            }
        }
        return limits.min() ?? Double(ProcessInfo.processInfo.physicalMemory)
    }
}

/// 4.1e12 → "4.1 TB" (decimal units, as disk and memory vendors count).
func formatBytes(_ bytes: Double) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    var value = bytes, unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(Int(value)) B" : String(format: "%.1f", value) + " " + units[unit]
}
