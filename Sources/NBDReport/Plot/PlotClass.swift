import NBDProtocol

/// The ten series the picture colours: the nine commands the spec names, by wire value,
/// and one for commands it does not.
enum PlotClass {
    static let count = 10
    static let names = ["READ", "WRITE", "DISC", "FLUSH", "TRIM", "CACHE", "WRITE_ZEROES", "BLOCK_STATUS", "RESIZE", "OTHER"]
    /// Okabe and Ito's palette, which stays apart for the common colour blindnesses.
    static let colors = ["#0072B2", "#D55E00", "#999999", "#000000", "#CC79A7", "#56B4E9", "#009E73", "#E69F00", "#F0E442", "#7F7F7F"]

    static func index(_ c: NBDCommand) -> Int {
        switch c {
        case .read, .write, .disc, .flush, .trim, .cache, .writeZeroes, .blockStatus, .resize: return Int(c.rawValue)
        case .unknown: return 9
        }
    }

    static func index(name: String) -> Int { names.firstIndex(of: name) ?? 9 }
}
