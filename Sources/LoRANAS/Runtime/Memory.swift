import Foundation

/// The memory a job may use, and the check that refuses a job too large for it before anything
/// is allocated (an allocation failure would abort the whole process, Python included).
public enum Memory {
    /// Bytes available to this process: MemAvailable from /proc/meminfo, or the cgroup's limit
    /// minus its usage when that is smaller. nil when neither can be read.
    public static var availableBytes: Int? {
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)).flatMap(memAvailable)
        let cgroup = cgroupHeadroom()
        switch (meminfo, cgroup) {
        case let (m?, c?): return min(m, c)
        case let (m, c): return m ?? c
        }
    }

    /// Throws when `bytes` (nil: the count overflowed) exceeds what is available.
    public static func require(_ bytes: Int?, for what: String) throws {
        guard let bytes else {
            throw LoRANASError.invalidArgument("\(what) needs more memory than a 64-bit count holds")
        }
        guard let available = availableBytes, bytes > available else { return }
        throw LoRANASError.invalidArgument(
            "\(what) needs about \(format(bytes)); \(format(available)) of memory are available")
    }

    /// "4.1 GB", "812 MB", "12 KB".
    public static func format(_ bytes: Int) -> String {
        let units: [(Double, String)] = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")]
        for (scale, unit) in units where Double(bytes) >= scale {
            return String(format: "%.1f %@", Double(bytes) / scale, unit)
        }
        return "\(bytes) B"
    }

    static func memAvailable(_ text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
            return kb.multipliedReportingOverflow(by: 1024).overflow ? nil : kb * 1024
        }
        return nil
    }

    static func cgroupHeadroom() -> Int? {
        func read(_ name: String) -> Int? {
            let path = "/sys/fs/cgroup/" + name
            let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines)
            return text.flatMap { Int($0) }  // "max" (no limit) reads as nil
        }
        guard let limit = read("memory.max") else { return nil }
        return max(0, limit - (read("memory.current") ?? 0))
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
