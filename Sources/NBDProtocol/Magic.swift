/// Every magic number of the NBD protocol (doc/proto.md), including the reserved
/// historic ones, so a decoder can name what it sees even when it must not accept it.
public enum NBDMagic {
    /// "NBDMAGIC": the first eight bytes of every server greeting.
    public static let initPasswd: UInt64 = 0x4e42_444d_4147_4943
    /// The second eight bytes of an oldstyle greeting.
    public static let cliservMagic: UInt64 = 0x0042_0281_8612_53
    /// "IHAVEOPT": second eight bytes of a newstyle greeting, and the prefix of every option.
    public static let iHaveOpt: UInt64 = 0x4948_4156_454f_5054
    /// Prefix of every option reply.
    public static let optionReply: UInt64 = 0x0003_e889_0455_65a9
    /// Compact (28-byte) request header.
    public static let request: UInt32 = 0x2560_9513
    /// Extended (32-byte) request header, after NBD_OPT_EXTENDED_HEADERS.
    public static let extendedRequest: UInt32 = 0x21e4_1c71
    /// Simple reply (formerly NBD_REPLY_MAGIC).
    public static let simpleReply: UInt32 = 0x6744_6698
    /// Structured reply chunk, after NBD_OPT_STRUCTURED_REPLY.
    public static let structuredReply: UInt32 = 0x668e_33ef
    /// Extended reply chunk, after NBD_OPT_EXTENDED_HEADERS.
    public static let extendedReply: UInt32 = 0x6e8a_278c
    /// Request magic before Linux 2.1.116pre2: reserved, never valid on the wire.
    public static let historicRequest: UInt32 = 0x1256_0953
    /// Reply magic of the same era: reserved.
    public static let historicReply: UInt32 = 0x9674_4668
    /// nbd-server's transaction log marker: reserved, never on the wire.
    public static let traceLog: UInt32 = 0x2560_9514
}
