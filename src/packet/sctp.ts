// SCTP as a probe needs it (RFC 9260): one packet holding an INIT chunk from a chosen source
// port, with the CRC32c checksum SCTP uses (Castagnoli, reflected, stored little-endian as Linux
// writes it). Pure: the packet goes out through kernel/raw-socket.ts.

let table: Uint32Array | undefined;

export function crc32c(b: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      table[i] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const x of b) crc = (crc >>> 8) ^ table[(crc ^ x) & 0xff]!;
  return (crc ^ 0xffffffff) >>> 0;
}

/** An SCTP packet with one INIT chunk: common header (verification tag 0, as INIT has), then the chunk. */
export function sctpInit(srcPort: number, dstPort: number, initiateTag: number): Uint8Array {
  const b = new Uint8Array(12 + 20);
  const v = new DataView(b.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint32(4, 0);
  b[12] = 1; // INIT
  v.setUint16(14, 20);
  v.setUint32(16, initiateTag >>> 0 || 1);
  v.setUint32(20, 65535); // a_rwnd
  v.setUint16(24, 10); // outbound streams
  v.setUint16(26, 10); // inbound streams
  v.setUint32(28, initiateTag >>> 0 || 1); // initial TSN
  v.setUint32(8, crc32c(b), true);
  return b;
}

export const SCTP_INIT = 1, SCTP_INIT_ACK = 2;

/** The common header and first chunk's type of an SCTP packet; undefined when it is too short or its checksum is wrong. */
export function parseSctp(b: Uint8Array): { srcPort: number; dstPort: number; vtag: number; chunk: number; initiateTag?: number } | undefined {
  if (b.length < 16) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const sum = v.getUint32(8, true);
  const copy = b.slice();
  new DataView(copy.buffer).setUint32(8, 0, true);
  if (crc32c(copy) !== sum) return undefined;
  const chunk = b[12]!;
  return { srcPort: v.getUint16(0), dstPort: v.getUint16(2), vtag: v.getUint32(4), chunk, ...(chunk === SCTP_INIT && b.length >= 20 ? { initiateTag: v.getUint32(16) } : {}) };
}

/**
 * The answer of a listening endpoint to an INIT: an INIT ACK from the port it was sent to, with
 * the INIT's initiate tag as its verification tag (what conntrack checks for a reply). It carries
 * no state cookie: the lab's probes only need to know the INIT got through and back.
 */
export function sctpInitAck(init: { srcPort: number; dstPort: number; initiateTag: number }, myTag: number): Uint8Array {
  const b = new Uint8Array(12 + 20);
  const v = new DataView(b.buffer);
  v.setUint16(0, init.dstPort);
  v.setUint16(2, init.srcPort);
  v.setUint32(4, init.initiateTag >>> 0);
  b[12] = SCTP_INIT_ACK;
  v.setUint16(14, 20);
  v.setUint32(16, myTag >>> 0 || 1);
  v.setUint32(20, 65535);
  v.setUint16(24, 10);
  v.setUint16(26, 10);
  v.setUint32(28, myTag >>> 0 || 1);
  v.setUint32(8, crc32c(b), true);
  return b;
}
