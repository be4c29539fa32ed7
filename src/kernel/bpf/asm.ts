// A handful of BPF instructions by hand, for what is too small to compile: the feature probes
// (a program that returns a constant, or calls one helper), tests' deliberately bad programs.
// Each instruction is 8 bytes: opcode, dst and src registers in one byte, a 16-bit offset, a
// 32-bit immediate (ld_imm64 takes two slots). The encoding is the kernel's
// Documentation/bpf/standardization/instruction-set.rst.

export type Insn = Uint8Array;

function insn(op: number, dst: number, src: number, off: number, imm: number): Insn {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint8(0, op);
  v.setUint8(1, (src << 4) | dst);
  v.setInt16(2, off, true);
  v.setInt32(4, imm, true);
  return b;
}

/** r<dst> = imm (64-bit move of a sign-extended 32-bit immediate). */
export const mov64Imm = (dst: number, imm: number) => insn(0xb7, dst, 0, 0, imm);
/** r<dst> = r<src> */
export const mov64Reg = (dst: number, src: number) => insn(0xbf, dst, src, 0, 0);
/** r<dst> += imm */
export const add64Imm = (dst: number, imm: number) => insn(0x07, dst, 0, 0, imm);
/** call helper #id */
export const call = (helper: number) => insn(0x85, 0, 0, 0, helper);
export const exit = () => insn(0x95, 0, 0, 0, 0);
/** r<dst> = *(u64 *)(r<src> + off) */
export const ldxDw = (dst: number, src: number, off: number) => insn(0x79, dst, src, off, 0);
/** *(u64 *)(r<dst> + off) = imm */
export const stDw = (dst: number, off: number, imm: number) => insn(0x7a, dst, 0, off, imm);
/** if r<dst> == imm goto +off */
export const jeqImm = (dst: number, imm: number, off: number) => insn(0x15, dst, 0, off, imm);

/** r<dst> = the map with this fd (ld_imm64 with src BPF_PSEUDO_MAP_FD): two slots. */
export function ldMapFd(dst: number, fd: number): Insn[] {
  return [insn(0x18, dst, 1, 0, fd), insn(0, 0, 0, 0, 0)];
}

/** Instructions into one buffer, as PROG_LOAD takes them. */
export function program(...parts: (Insn | Insn[])[]): Uint8Array {
  const flat = parts.flat();
  const out = new Uint8Array(flat.length * 8);
  flat.forEach((p, i) => out.set(p, i * 8));
  return out;
}

/** Helper ids (enum bpf_func_id) the probes call. */
export const HELPER = { map_lookup_elem: 1, ktime_get_ns: 5, redirect_neigh: 152, redirect_peer: 155 } as const;
