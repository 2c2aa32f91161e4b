import Foundation

/// A contiguous, row-major Float32 tensor.
///
/// `Tensor` is a reference type: its storage is one 64-byte-aligned allocation, and a view
/// (`slice`, `reshaped`) shares it while keeping the owner alive. Kernels take `ptr` plus
/// explicit dimensions, in the style of llm.c; `Tensor` exists to own memory and carry shapes.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let ptr: UnsafeMutablePointer<Float>
    private let storage: Storage

    /// Where the elements live, and so how deinit gives them back.
    private enum Storage {
        /// In a malloc block (`allocate`), freed with the tensor.
        case heap(block: UnsafeMutableRawPointer)
        /// In an anonymous mapping of this many bytes (`init(zeroPages:)`), unmapped with the tensor.
        case mapping(bytes: Int)
        /// In the storage of another tensor, kept alive by this one.
        case view(of: Tensor)
    }

    /// A new tensor filled with zeros.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        _ = Engine.threads   // first use configures threads and the allocator
        self.shape = shape
        self.count = shape.reduce(1, *)
        let heap = Self.allocate(max(count, 1))
        let ptr = heap.ptr
        // split across the threads: zeroing (and faulting in) a large buffer is otherwise a serial pass
        Engine.parallelRanges(max(count, 1), grain: 1 << 16) { r in
            (ptr + r.lowerBound).initialize(repeating: 0, count: r.count)
        }
        self.ptr = ptr
        storage = .heap(block: heap.block)
    }

    /// A new tensor of zeros in pages of its own (an anonymous mapping): a page takes memory when first written,
    /// and `releasePages(_:)` hands pages back. The model's parameters live in one, so the bf16 mode's linear
    /// weights, kept packed elsewhere, take no memory here. A refused mapping falls back to the heap.
    public init(zeroPages shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        _ = Engine.threads
        self.shape = shape
        self.count = shape.reduce(1, *)
        let bytes = max(count, 1) * 4
        let m = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if let m, m != MAP_FAILED {
            self.ptr = m.bindMemory(to: Float.self, capacity: max(count, 1))
            storage = .mapping(bytes: bytes)
        } else {
            let heap = Self.allocate(max(count, 1))
            self.ptr = heap.ptr
            self.ptr.initialize(repeating: 0, count: max(count, 1))
            storage = .heap(block: heap.block)
        }
    }

    /// A new tensor whose contents are unspecified: for outputs a kernel overwrites in full
    /// (saves the zero-fill pass and its page faults on large activations).
    public init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        _ = Engine.threads
        self.shape = shape
        self.count = shape.reduce(1, *)
        let heap = Self.allocate(max(count, 1))
        self.ptr = heap.ptr
        storage = .heap(block: heap.block)
    }

    /// A new tensor holding a copy of `values`.
    public convenience init(_ values: [Float], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { ptr.update(from: $0.baseAddress!, count: values.count) }
    }

    private init(view owner: Tensor, offset: Int, shape: [Int]) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.ptr = owner.ptr + offset
        if case .view(let root) = owner.storage {
            storage = .view(of: root)
        } else {
            storage = .view(of: owner)
        }
    }

    deinit {
        switch storage {
        case .heap(let block): free(block)
        case .mapping(let bytes): munmap(UnsafeMutableRawPointer(ptr), bytes)
        case .view: break
        }
    }

    /// Room for `count` floats from malloc, 64-byte aligned by hand inside a block 64 bytes larger. An aligned
    /// allocation (`posix_memalign`) splits a small free chunk off in front of each block; small objects then
    /// take those chunks and pin the heap between large activations, so freed activations stop coalescing. At
    /// medium in bf16 that moved the step's peak RSS by 60 MiB from one build to the next.
    private static func allocate(_ count: Int) -> (block: UnsafeMutableRawPointer, ptr: UnsafeMutablePointer<Float>) {
        guard let block = malloc(count * 4 + 64) else { fatalError("out of memory for \(count) floats") }
        let aligned = (Int(bitPattern: block) + 63) / 64 * 64
        let raw = block + (aligned - Int(bitPattern: block))
        return (block, raw.bindMemory(to: Float.self, capacity: count))
    }

    /// Hands the whole pages inside elements `range` back to the OS: they read as zeros afterwards and take no
    /// memory until written. The partial pages at either end keep their values.
    public func releasePages(_ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "pages out of range")
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let from = (Int(bitPattern: ptr + range.lowerBound) + page - 1) / page * page
        let to = Int(bitPattern: ptr + range.upperBound) / page * page
        guard to > from else { return }
        madvise(UnsafeMutableRawPointer(bitPattern: from), to - from, MADV_DONTNEED)
    }

    public var rank: Int { shape.count }
    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: ptr, count: count) }
    public var array: [Float] { Array(buffer) }

    /// A view of `count(shape)` elements starting at `offset`, sharing storage.
    public func view(offset: Int = 0, shape: [Int]) -> Tensor {
        precondition(offset >= 0 && offset + shape.reduce(1, *) <= count, "view out of range")
        return Tensor(view: self, offset: offset, shape: shape)
    }

    /// The same storage under another shape with the same element count.
    public func reshaped(_ shape: [Int]) -> Tensor {
        precondition(shape.reduce(1, *) == count, "cannot reshape \(self.shape) to \(shape)")
        return view(shape: shape)
    }

    /// Row `i` of the leading axis, as a view.
    public subscript(row i: Int) -> Tensor {
        let inner = Array(shape.dropFirst())
        let n = inner.reduce(1, *)
        return view(offset: i * n, shape: inner)
    }

    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.ptr.initialize(from: ptr, count: count)
        return t
    }

    public func zero() { ptr.update(repeating: 0, count: count) }

    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        ptr.update(from: other.ptr, count: count)
    }

    /// ‖x‖₂, accumulated in Double.
    public var norm: Double {
        var s = 0.0
        for i in 0..<count { s += Double(ptr[i]) * Double(ptr[i]) }
        return s.squareRoot()
    }

    /// Whether every element is finite: x − x is 0 for a finite x and NaN otherwise, so the sum stays 0.
    public var isFinite: Bool {
        var lanes = F16x()
        var i = 0
        while i + 16 <= count {
            let v = load(ptr, i)
            lanes += v - v
            i += 16
        }
        var tail: Float = 0
        while i < count {
            tail += ptr[i] - ptr[i]
            i += 1
        }
        return lanes.sum() + tail == 0
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}
