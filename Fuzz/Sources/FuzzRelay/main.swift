import FuzzSupport
import NBDEmulation
import NBDProxy

/// The proxy's policy relay (PolicyEngine: two conversations, edits over stream ranges,
/// holds and cuts, nbdtap's own replies, emulated zeroes and split requests) on arbitrary
/// client and server bytes; the flags byte picks the chain.
let chains: [PolicyChain] = Profile.all.map { PolicyChain([.emulate($0.options)]) } + [
    ["--zeromode", "emulate", "--fastzeromode", "ignore"],
    ["--mask", "fast-zero,trim,fua,df,cache,block-status-payload", "--read-only"],
    ["--zeromode", "notrim", "--fastzeromode", "slow", "--no-meta-contexts"],
    ["--max-payload", "4k", "--no-extents", "--delay", "all=1ms"],
    ["--zeromode", "emulate", "--max-payload", "512", "--error", "write=EIO,every=3", "--disconnect-after", "requests=20"],
    ["--error", "all=ENOSPC,rate=50%,seed=3", "--disconnect-after", "client-bytes=3000"],
    ["--no-structured-replies", "--max-payload", "1k", "--disconnect-after", "server-bytes=5000"],
].map { try! PolicyChain(arguments: $0) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Chunker(UnsafeRawBufferPointer(start: data, count: size))
    EmulationHarness.run(chain: chains[Int(input.flags) % chains.count],
                         records: input.records.map { (fromUpstream: $0.toClient, bytes: $0.bytes) })
    return 0
}
