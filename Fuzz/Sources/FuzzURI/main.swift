import NBDProtocol

/// NBD URI parsing, and printing back what parsed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let uri = try? NBDURI(parsing: text) { _ = try? NBDURI(parsing: uri.description) }
    return 0
}
