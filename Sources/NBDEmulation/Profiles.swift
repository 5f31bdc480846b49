/// The profiles. Peers installed here (Debian 12 packages) were measured by
/// Tests/NBDEmulationTests/Fixtures/measure.sh; the historical ones follow the dates at
/// which the spec (NetworkBlockDevice/nbd, doc/proto.md) gained each feature.
/// ProfileMeasurementTests holds every profile to those fixtures.
extension Profile {
    static let measuredBy = "Tests/NBDEmulationTests/Fixtures/measure.sh: probe.py (raw NBD_OPT_* on fresh connections), nbdinfo --json, LIBNBD_DEBUG=1 nbdinfo"

    public static let all: [Profile] = [nbdServer, nbdkit, qemuNBD, preExtendedHeaders, preFastZero, preStructuredReplies, oldstyle]

    /// nbd-server 3.24: eflags 0x16d with or without a structured-reply attempt;
    /// STRUCTURED_REPLY, LIST/SET_META_CONTEXT and EXTENDED_HEADERS answered ERR_UNSUP;
    /// no CACHE, FAST_ZERO or DF. Rotational is configurable there, so it stays.
    public static let nbdServer = Profile(
        name: "nbd-server-3.24",
        summary: "the reference server as Debian 12 ships it: simple replies only, no cache, fast zero or block status",
        sources: [ProfileSource(tool: "nbd-server", version: "3.24",
                                method: "\(measuredBy) against `nbd-server -C cfg -d` (export1: 1 MiB file, flush/fua/trim = true); fixture nbd-server.json")],
        options: EmulationOptions(masked: [.cache, .fastZero, .df, .blockStatusPayload],
                                  refused: [.structuredReplies, .metaContexts, .extendedHeaders]))

    /// nbdkit 1.32.5: everything but extended headers (ERR_UNSUP), so no
    /// BLOCK_STATUS_PAYLOAD either. eflags 0xd6d, 0xded with structured replies.
    public static let nbdkit = Profile(
        name: "nbdkit-1.32",
        summary: "nbdkit as Debian 12 ships it: structured replies and meta contexts, no extended headers",
        sources: [ProfileSource(tool: "nbdkit", version: "1.32.5",
                                method: "\(measuredBy) against `nbdkit memory 1M`; fixture nbdkit.json")],
        options: EmulationOptions(masked: [.blockStatusPayload], refused: [.extendedHeaders]))

    /// qemu-nbd 7.2.22 with its default --shared=1: no CAN_MULTI_CONN (0xc6d, 0xced with
    /// structured replies), no extended headers (qemu 8.2 added them). `-e 2` shows
    /// MULTI_CONN (fixture qemu-nbd-shared2.json), so the mask copies the default only.
    public static let qemuNBD = Profile(
        name: "qemu-nbd-7.2",
        summary: "qemu-nbd as Debian 12 ships it, default --shared=1: no multi-conn, no extended headers",
        sources: [ProfileSource(tool: "qemu-nbd", version: "7.2.22",
                                method: "\(measuredBy) against `qemu-nbd -f raw` on a 1 MiB file; fixtures qemu-nbd.json, qemu-nbd-shared2.json")],
        options: EmulationOptions(masked: [.multiConn, .blockStatusPayload], refused: [.extendedHeaders]))

    /// A server from before extended headers: qemu-nbd up to 8.1 (qemu 8.2 added
    /// NBD_OPT_EXTENDED_HEADERS and NBD_FLAG_BLOCK_STATUS_PAYLOAD), nbdkit and nbd-server as
    /// Debian 12 ships them. Structured replies, meta contexts and fast zero stay; in front
    /// of qemu-nbd 10 it shows what qemu-nbd 7.2 shows (IntegrationTests' profile test).
    public static let preExtendedHeaders = Profile(
        name: "pre-extended-headers",
        summary: "a server from before extended headers (qemu-nbd <= 8.1, nbdkit 1.32): 32-bit requests, structured replies",
        sources: [ProfileSource(tool: "qemu", version: "8.2",
                                method: "qemu docs/interop/nbd.rst: NBD_OPT_EXTENDED_HEADERS and NBD_FLAG_BLOCK_STATUS_PAYLOAD first in 8.2"),
                  ProfileSource(tool: "qemu-nbd", version: "7.2.22 and 10.0.2",
                                method: "probe.py against each (EXTENDED_HEADERS: ERR_UNSUP from 7.2, ACK and eflags 0x1ced from 10)"),
                  ProfileSource(tool: "nbdkit", version: "1.32.5",
                                method: "\(measuredBy) against `nbdkit memory 1M` (EXTENDED_HEADERS: ERR_UNSUP)"),
                  ProfileSource(tool: "nbdkit", version: "≤ 1.33.11",
                                method: "git grep of server/ at v1.33.11-2 (2023-03-10, the newest history read here): no NBD_OPT_EXTENDED_HEADERS; later releases not checked")],
        options: EmulationOptions(masked: [.blockStatusPayload], refused: [.extendedHeaders]))

    /// Before NBD_CMD_FLAG_FAST_ZERO (spec commit 9376d16, on master 2019-09-03); extended
    /// headers (2023-04-24) are later still.
    public static let preFastZero = Profile(
        name: "pre-fast-zero",
        summary: "a server from before the 2019 fast-zero extension",
        sources: [ProfileSource(tool: "NBD spec", version: "doc/proto.md",
                                method: "git log: NBD_CMD_FLAG_FAST_ZERO 9376d16 (committed 2019-09-03); extended headers b3883c7 (2023-04-24)")],
        options: EmulationOptions(masked: [.fastZero, .blockStatusPayload], refused: [.extendedHeaders]))

    /// Before structured replies reached master (cbad13c, 2018-03-14): so also before
    /// block status and meta contexts (c5215b2, 2018-04-30), CACHE (9378376, 2018-05-21)
    /// and fast zero; after WRITE_ZEROES (36bf76f, 2016-12-17), CAN_MULTI_CONN
    /// (eb9e794, 2016-11-22) and INFO/GO (e6b56c1, 2017-04-30), which stay.
    public static let preStructuredReplies = Profile(
        name: "pre-structured-replies",
        summary: "a server from before structured replies (spec master, March 2018): no DF, block status, cache or fast zero",
        sources: [ProfileSource(tool: "NBD spec", version: "doc/proto.md",
                                method: "git log: structured replies cbad13c (2018-03-14), block status c5215b2 (2018-04-30), CACHE 9378376 (2018-05-21), WRITE_ZEROES 36bf76f (2016-12-17), INFO/GO e6b56c1 (2017-04-30)")],
        options: EmulationOptions(masked: [.df, .cache, .fastZero, .blockStatusPayload],
                                  refused: [.structuredReplies, .metaContexts, .extendedHeaders]))

    /// An oldstyle server: nbd-server served oldstyle until "Drop support for the oldstyle
    /// protocol" (3694019, 2015-03-09, first in nbd-3.10). Flags it had by then: FLUSH,
    /// FUA, ROTATIONAL (39e2020, 2011, nbd-3.0) and TRIM (111058e, 2011); everything newer
    /// (write zeroes, multi-conn, DF, cache, fast zero) is hidden. The greeting layout was checked against `nbdkit -o` (fixture
    /// nbdkit-oldstyle.json). There is no haggling, so no option can be negotiated.
    public static let oldstyle = Profile(
        name: "oldstyle",
        summary: "an oldstyle server (nbd-server before 3.10): no options, no write zeroes, multi-conn or cache",
        sources: [ProfileSource(tool: "nbd-server", version: "≤ 3.9",
                                method: "git log of NetworkBlockDevice/nbd: 3694019 (oldstyle dropped, 2015-03-09, first in nbd-3.10), 39e2020 and 111058e (flush/FUA/rotational/trim, 2011)"),
                  ProfileSource(tool: "nbdkit", version: "1.32.5",
                                method: "\(measuredBy) against `nbdkit -o memory 1M` (greeting layout); fixture nbdkit-oldstyle.json")],
        options: EmulationOptions(masked: [.writeZeroes, .fastZero, .df, .multiConn, .cache, .blockStatusPayload],
                                  refused: Set(RefusableOption.allCases), handshake: .oldstyle))
}
