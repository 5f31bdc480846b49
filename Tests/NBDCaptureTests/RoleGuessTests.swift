import NBDCapture
import NIOCore
import Testing

/// Telling client from server by content, for connections picked up mid-way.
struct RoleGuessTests {
    func buf(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }
    let greeting = Array("NBDMAGIC".utf8) + Array("IHAVEOPT".utf8) + [0, 3]
    let option = Array("IHAVEOPT".utf8) + [0, 0, 0, 7, 0, 0, 0, 0]
    let request: [UInt8] = [0x25, 0x60, 0x95, 0x13, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 20)
    let simpleReply: [UInt8] = [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8)
    let chunk: [UInt8] = [0x66, 0x8e, 0x33, 0xef, 0, 1, 0, 1] + [UInt8](repeating: 0, count: 12)
    let optionReply: [UInt8] = [0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0]

    @Test func rolesFromTheFirstBytes() {
        #expect(NBDRoleGuess.role(ofStreamStartingWith: buf(greeting)) == .server)
        #expect(NBDRoleGuess.role(ofStreamStartingWith: buf(optionReply)) == .server)
        #expect(NBDRoleGuess.role(ofStreamStartingWith: buf(simpleReply)) == .server)
        #expect(NBDRoleGuess.role(ofStreamStartingWith: buf(chunk)) == .server)
        #expect(NBDRoleGuess.role(ofStreamStartingWith: buf(option)) == .client)
        #expect(NBDRoleGuess.role(ofStreamStartingWith: buf(request)) == .client)
        #expect(NBDRoleGuess.role(ofStreamStartingWith: buf([0x25, 0x60])) == nil)
        #expect(NBDRoleGuess.role(ofStreamStartingWith: buf([1, 2, 3, 4, 5, 6, 7, 8])) == nil)
    }

    @Test func rolesFoundMidStream() {
        // The capture starts inside a READ payload; the next reply header follows it.
        #expect(NBDRoleGuess.firstRole(in: buf([UInt8](repeating: 7, count: 100) + simpleReply)) == .server)
        #expect(NBDRoleGuess.firstRole(in: buf([UInt8](repeating: 7, count: 100) + request), limit: 50) == nil)
    }

    @Test func whichSideIsTheServer() {
        #expect(NBDRoleGuess.firstIsServer(buf(greeting), buf([])) == true)
        #expect(NBDRoleGuess.firstIsServer(buf([]), buf(greeting)) == false)
        #expect(NBDRoleGuess.firstIsServer(buf(request), buf(simpleReply)) == false)
        #expect(NBDRoleGuess.firstIsServer(buf(simpleReply), buf(request)) == true)
        #expect(NBDRoleGuess.firstIsServer(buf(request), buf([9, 9, 9, 9])) == false)
        #expect(NBDRoleGuess.firstIsServer(buf(request), buf(request)) == nil)
        #expect(NBDRoleGuess.firstIsServer(buf([1]), buf([2])) == nil)
    }
}
