import Foundation

/// The memory a job may use, and the check that refuses a job too large for it before anything
/// is allocated (an allocation failure would abort the whole process, Python included).
public enum Memory {
    /// Bytes this process may still allocate: MemAvailable from /proc/meminfo, lowered to the
    /// cgroup's memory limit (v2, then v1) when that is smaller; the physical memory where neither
    /// can be read.
    public static var availableBytes: Double {
        var limits: [Double] = []
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
            let kb = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        {
            limits.append(kb * 1024)
        }
        // "max" (v2) reads as no limit; v1 reports a huge number instead.
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
                let bytes = Double(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                limits.append(bytes)
            }
        }
        return limits.min() ?? Double(ProcessInfo.processInfo.physicalMemory)
    }

    /// Below this many bytes a request is not checked: every forward asks, and reading
    /// /proc/meminfo each time would cost more than the allocation.
    static let unchecked = 64 << 20

    /// Throws when `bytes` (nil: the count overflowed) exceeds what is available.
    public static func require(_ bytes: Int?, for what: String) throws {
        guard let bytes else {
            throw LoRANASError.invalidArgument("\(what) needs more memory than a 64-bit count holds")
        }
        guard bytes >= unchecked else { return }
        let available = availableBytes
        guard Double(bytes) > available else { return }
        throw LoRANASError.invalidArgument(
            "\(what) needs about \(format(Double(bytes))); \(format(available)) of memory are available")
    }

    /// 4.1e12 → "4.1 TB" (decimal units, as disk and memory vendors count).
    public static func format(_ bytes: Double) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
        var value = bytes
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(Int(value)) B" : String(format: "%.1f", value) + " " + units[unit]
    }
}

/// Overflow-checked products and sums of sizes: nil instead of a trap.
public enum Size {
    public static func product(_ xs: [Int]) -> Int? {
        var p = 1
        for x in xs {
            guard x >= 0 else { return nil }
            let (r, overflow) = p.multipliedReportingOverflow(by: x)
            if overflow { return nil }
            p = r
        }
        return p
    }

    public static func sum(_ xs: [Int?]) -> Int? {
        var s = 0
        for x in xs {
            guard let x else { return nil }
            let (r, overflow) = s.addingReportingOverflow(x)
            if overflow { return nil }
            s = r
        }
        return s
    }
}
