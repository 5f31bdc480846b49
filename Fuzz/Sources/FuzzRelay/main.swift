import FuzzSupport
import NBDEmulation
import NBDProxy

/// The proxy's emulation relay (EmulationEngine: two conversations, edits over stream
/// ranges, nbdtap's own replies and emulated zeroes) on arbitrary client and server bytes;
/// the flags byte picks the option set.
let optionSets: [EmulationOptions] = Profile.all.map(\.options) + [
    try! EmulationOptions(arguments: ["--zeromode", "emulate", "--fastzeromode", "ignore"]),
    try! EmulationOptions(arguments: ["--mask", "fast-zero,trim,fua,df,cache,block-status-payload", "--read-only"]),
    try! EmulationOptions(arguments: ["--zeromode", "notrim", "--fastzeromode", "slow", "--no-meta-contexts"]),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Chunker(UnsafeRawBufferPointer(start: data, count: size))
    EmulationHarness.run(options: optionSets[Int(input.flags) % optionSets.count],
                         records: input.records.map { (fromUpstream: $0.toClient, bytes: $0.bytes) })
    return 0
}
