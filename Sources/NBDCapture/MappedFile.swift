import CMapGuard
#if canImport(Glibc)
import Glibc
#endif

/// A regular file read through a memory mapping of one bounded window at a time, so a
/// capture's records can be parsed where they lie instead of being read into a buffer.
///
/// Why it is built this way:
/// - One window (`windowSize`, or one record if larger) is mapped at a time and unmapped
///   when reading moves past it: resident memory stays at about a window however large the
///   file is, even when every page is touched, since mapped file pages count in the RSS.
/// - `MADV_SEQUENTIAL` lets the kernel read ahead and drop pages behind; pages nobody
///   touches (payload the decoder skips) are never faulted in at all.
/// - Bytes are handed out only below the file's size as last seen by `fstat`, and the size
///   is looked at again before refusing a range, so a file still being written reads like
///   libpcap reads it (up to what exists).
/// - A file *shrunk* by another process while it is mapped faults on access (SIGBUS),
///   which would kill the process: no file may do that. Each window is registered with a
///   guard (CMapGuard) whose handler maps zeros over such a page and notes where;
///   `shrunk` says so, and the reader stops there with a message and what it has.
final class MappedFile {
    /// The descriptor is owned by the caller (the `FILE` it came from), not closed here.
    private let descriptor: Int32
    /// File size as last seen.
    private(set) var size: Int
    private var window: UnsafeMutableRawPointer?
    private var windowStart = 0
    private var windowLength = 0
    /// Why the last mapping failed (`mmap`'s errno), for the reader's message.
    private(set) var mapError: String?
    /// This reader's slot in the SIGBUS guard (-1: none free, unguarded).
    private let guardSlot: Int32

    /// Bytes mapped at once: large enough that remapping is rare, small next to the
    /// 64 MB that decoding should stay under.
    static let windowSize = 8 << 20
    private static let pageSize: Int = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))

    /// nil when `descriptor` is not a regular file or cannot be looked at.
    init?(descriptor: Int32) {
        var st = stat()
        guard fstat(descriptor, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        self.descriptor = descriptor
        self.size = Int(st.st_size)
        self.guardSlot = nbdtap_map_guard_acquire()
    }

    deinit {
        unmap()
        nbdtap_map_guard_release(guardSlot)
    }

    /// The file offset of the first read that found the file shrunk under a window (it read
    /// zeros), or nil. Checked by the reader before it trusts bytes it handed out; it stays
    /// set, since nothing after it can be trusted either.
    var shrunk: Int? {
        if shrunkAt == nil { latchFault() }
        return shrunkAt
    }
    private var shrunkAt: Int?

    /// Turns the guard's faulting address into a file offset while the window it lies in
    /// is still the current one.
    private func latchFault() {
        let address = nbdtap_map_guard_fault(guardSlot)
        guard address != 0, let window else { return }
        shrunkAt = windowStart + (Int(bitPattern: UInt(address)) - Int(bitPattern: window))
    }

    /// The `count` bytes at `offset`, valid until the next call; nil when the file ends
    /// before them (`available(from:)` says how many there are) or cannot be mapped
    /// (`mapError` says why).
    func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0 else { return nil }
        let end = offset.addingReportingOverflow(count)
        guard !end.overflow else { return nil }
        if end.partialValue > size { refreshSize() }
        guard end.partialValue <= size else { return nil }
        if count == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
        if window == nil || offset < windowStart || end.partialValue > windowStart + windowLength {
            guard remap(covering: offset, end.partialValue) else { return nil }
        }
        return UnsafeRawBufferPointer(start: window! + (offset - windowStart), count: count)
    }

    /// Bytes from `offset` to the end of the file, as many as there are (for messages).
    func available(from offset: Int) -> Int {
        refreshSize()
        return max(0, size - offset)
    }

    private func refreshSize() {
        var st = stat()
        if fstat(descriptor, &st) == 0 { size = Int(st.st_size) }
    }

    private func remap(covering offset: Int, _ end: Int) -> Bool {
        unmap()
        let start = offset - offset % Self.pageSize
        let length = min(max(Self.windowSize, end - start), size - start)
        guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, descriptor, off_t(start)), p != MAP_FAILED else {
            mapError = "cannot map bytes \(start)-\(start + length): \(String(cString: strerror(errno)))"
            return false
        }
        _ = madvise(p, length, MADV_SEQUENTIAL)
        nbdtap_map_guard_set(guardSlot, p, length)
        window = p
        windowStart = start
        windowLength = length
        return true
    }

    private func unmap() {
        if let window {
            if shrunkAt == nil { latchFault() }
            nbdtap_map_guard_set(guardSlot, nil, 0)
            munmap(window, windowLength)
        }
        window = nil
        windowLength = 0
    }
}
