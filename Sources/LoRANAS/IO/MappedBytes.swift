import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A file's bytes mapped read-only, or a heap copy of bytes given in memory (tests and fuzz targets use that to
/// skip the file system); released when the owner goes. Only regular files are mapped, checked again on the
/// open descriptor (the path may have been replaced after the first check).
final class MappedBytes: @unchecked Sendable {
    /// The first byte.
    let base: UnsafeRawPointer
    /// The number of bytes.
    let count: Int
    /// Whether `base` is a mapping (pages can be handed back with `madvise`) rather than a heap copy.
    let isMapped: Bool

    /// Maps the regular file at `path`. A missing file is `.notFound`, other OS errors `.io` with errno.
    init(mapping path: String) throws {
        try Files.requireRegular(path)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw LoRANASError.notFound("no such file: \(path)") }
            throw LoRANASError.posix("cannot open \(path)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LoRANASError.posix("cannot stat \(path)") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw LoRANASError.io("\(path) is not a regular file") }
        count = Int(st.st_size)
        guard count > 0 else {  // mmap refuses a zero length; an empty file is an empty buffer
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 16))
            isMapped = false
            return
        }
        guard let m = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw LoRANASError.posix("cannot map \(path)")
        }
        base = UnsafeRawPointer(m)
        isMapped = true
    }

    /// A heap copy of `bytes`.
    init(copying bytes: UnsafeRawBufferPointer) {
        count = bytes.count
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        if let src = bytes.baseAddress { copy.copyMemory(from: src, byteCount: count) }
        base = UnsafeRawPointer(copy)
        isMapped = false
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// The window Linux maps around a read fault on a file mapping ("fault-around", 64 KiB by default): a read
    /// of one page maps the cached pages of its whole aligned window, neighbours included.
    static let faultAroundBytes = 1 << 16

    /// Hands the pages under `range` (byte offsets) back to the kernel: a mapped file's clean pages leave the
    /// resident set and are read again from the page cache when touched. The range is widened to whole
    /// fault-around windows, since reading it mapped those too; a neighbour's pages dropped with it are mapped
    /// again when it is read (the mapping is never written). Nothing for a heap copy.
    func dropPages(_ range: Range<Int>) {
        guard isMapped, !range.isEmpty else { return }
        // Windows are aligned in the address space; the mapping itself is only page-aligned.
        let window = Self.faultAroundBytes
        let first = Int(bitPattern: base)
        let from = max((first + range.lowerBound) / window * window, first)
        let to = min((first + range.upperBound + window - 1) / window * window, first + count)
        madvise(UnsafeMutableRawPointer(bitPattern: from), to - from, MADV_DONTNEED)
    }
}
