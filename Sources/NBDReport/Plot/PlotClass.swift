/// The ten series the picture colours (`CommandSeries`), with their names and colours.
enum PlotClass {
    static let count = CommandSeries.count
    static let names = ["READ", "WRITE", "DISC", "FLUSH", "TRIM", "CACHE", "WRITE_ZEROES", "BLOCK_STATUS", "RESIZE", "OTHER"]
    /// Okabe and Ito's palette, which stays apart for the common colour blindnesses.
    static let colors = ["#0072B2", "#D55E00", "#999999", "#000000", "#CC79A7", "#56B4E9", "#009E73", "#E69F00", "#F0E442", "#7F7F7F"]
}
