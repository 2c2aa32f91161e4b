import CBF16
import COpenBLAS
import CRuntime
import Dispatch
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

/// glibc's mallopt (malloc.h is not in Swift's Glibc module).
@_silgen_name("mallopt") func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32

/// How the engine uses the machine's cores.
///
/// The engine splits work across its own threads and keeps OpenBLAS single-threaded:
/// Debian's OpenBLAS 0.3.21 with 2 threads is often slower than 1 on LoRA's skinny shapes,
/// and two pools spinning on two cores fight. The split of every loop depends only on the
/// thread count, so the same seed and thread count give the same bits.
public enum Engine {
    nonisolated(unsafe) private static var _threads: Int = {
        openblas_set_num_threads(1)
        // Every step allocates and frees the same large activation buffers. Keeping them in the
        // heap (not fresh mmaps) reuses pages instead of faulting and zeroing them again.
        _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD */, 1 << 30)
        _ = glibcMallopt(-1 /* M_TRIM_THRESHOLD */, 1 << 30)
        return (try? threadsFromEnvironment()) ?? defaultThreads()
    }()

    /// The cores, shared among the ranks `mpirun` started on this machine.
    private static func defaultThreads() -> Int {
        let local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE").flatMap { Int(String(cString: $0)) } ?? 1
        return max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, local))
    }
    private static let lock = NSLock()
    /// The largest thread count the engine runs: the caller plus lr_pool.c's 63 workers.
    public static let maxThreads = 64

    /// Worker threads used by kernels (default: `LORANAS_NUM_THREADS`, or the core count divided by the
    /// number of ranks `mpirun` started on this machine).
    public static var threads: Int {
        get {
            lock.lock()
            defer { lock.unlock() }
            return _threads
        }
        set {
            lock.lock()
            _threads = min(maxThreads, max(1, newValue))
            lock.unlock()
            openblas_set_num_threads(1)
        }
    }

    /// The threads a loop started here may use: `threads`, or 1 inside a parallel job (a step's thread shard, see
    /// `ShardReplicas`), where nested loops run serially.
    static var usableThreads: Int {
        lr_pool_in_job() != 0 ? 1 : threads
    }

    /// Sets the thread count, refusing values outside 1...maxThreads instead of clamping them.
    public static func setThreads(_ n: Int) throws {
        try require(n >= 1 && n <= maxThreads, "thread count must be in 1...\(maxThreads), got \(n)")
        threads = n
    }

    /// `LORANAS_NUM_THREADS` as a thread count, nil when unset; a value that is not a count in
    /// 1...maxThreads is an error (entry points call `checkEnvironment`, so it is never ignored).
    static func threadsFromEnvironment() throws -> Int? {
        // getenv, not ProcessInfo's dictionary: every C ABI call checks this.
        guard let raw = getenv("LORANAS_NUM_THREADS") else { return nil }
        let s = String(cString: raw)
        let text = s.trimmingCharacters(in: .whitespaces)
        guard let n = Int(text), n >= 1, n <= maxThreads else {
            throw LoRANASError.invalidArgument(
                "LORANAS_NUM_THREADS=\"\(s)\" is not a thread count in 1...\(maxThreads)")
        }
        return n
    }

    /// The OpenBLAS kernels this CPU runs best (see `lr_openblas_preferred_core`), nil when none fits.
    public static var preferredOpenBLASCore: String? {
        lr_openblas_preferred_core().map { String(cString: $0) }
    }

    /// For executables, first thing in main: OpenBLAS picks its kernels when it loads, before main, so unless
    /// OPENBLAS_CORETYPE says which, the process restarts itself once (same pid, same arguments) with the kernels
    /// this CPU runs best. If the restart fails, it goes on with the kernels already loaded.
    public static func restartWithPreferredOpenBLASKernels() {
        guard getenv("OPENBLAS_CORETYPE") == nil, let core = preferredOpenBLASCore else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }

    /// The kernels OpenBLAS runs in this process (it picks them when it loads, from OPENBLAS_CORETYPE or CPUID).
    public static var openBLASCore: String {
        openblas_get_corename().map { String(cString: $0) } ?? "unknown"
    }

    /// Throws when the environment holds a setting the engine cannot honour.
    public static func checkEnvironment() throws {
        _ = try threadsFromEnvironment()
    }

    /// Runs `body(chunk)` for chunk in 0..<chunks on the engine's threads (the caller plus a
    /// spinning pool, see lr_pool.c). Each chunk must write only its own outputs.
    public static func parallelFor(_ chunks: Int, _ body: (Int) -> Void) {
        if chunks <= 1 {
            if chunks == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var f = body
            withUnsafeMutablePointer(to: &f) { p in
                lr_pool_run(
                    chunks, Int32(threads),
                    { ctx, i in
                        ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
                    }, p)
            }
        }
    }

    /// Splits 0..<n into `threads` contiguous ranges (fewer if n is small) and runs them in parallel.
    /// `grain` is the least amount of work worth a thread.
    public static func parallelRanges(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let t = min(usableThreads, max(1, n / max(grain, 1)))
        if t <= 1 {
            if n > 0 { body(0..<n) }
            return
        }
        parallelFor(t) { i in
            let lo = n * i / t, hi = n * (i + 1) / t
            if lo < hi { body(lo..<hi) }
        }
    }
}
