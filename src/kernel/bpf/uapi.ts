// The numbers and struct layouts of the bpf(2) uapi that gauze uses, and nothing else: commands,
// map, program, attach and link types, flags, and where each field of union bpf_attr and of the
// info structs sits. test/unit/bpf-uapi.test.ts checks every number against
// /usr/include/linux/bpf.h and, for what that header is too old to have (tcx came in 6.6; this
// build machine's linux-libc-dev is 6.1), against the running kernel's own BTF through bpftool;
// it checks every layout against the kernel's union bpf_attr in the same BTF.

/** bpf(2)'s syscall number: x86_64 321, aarch64 280 (asm-generic). */
export const SYS_BPF = process.arch === "arm64" ? 280 : 321;

/** enum bpf_cmd (BPF_<name>). */
export const CMD = {
  MAP_CREATE: 0, MAP_LOOKUP_ELEM: 1, MAP_UPDATE_ELEM: 2, MAP_DELETE_ELEM: 3, MAP_GET_NEXT_KEY: 4,
  PROG_LOAD: 5, OBJ_PIN: 6, OBJ_GET: 7, PROG_TEST_RUN: 10, PROG_GET_FD_BY_ID: 13, MAP_GET_FD_BY_ID: 14,
  OBJ_GET_INFO_BY_FD: 15, PROG_QUERY: 16, RAW_TRACEPOINT_OPEN: 17, BTF_LOAD: 18, BTF_GET_FD_BY_ID: 19,
  LINK_CREATE: 28, LINK_UPDATE: 29, LINK_GET_FD_BY_ID: 30, LINK_DETACH: 34,
} as const;
export type CmdName = keyof typeof CMD;

/** enum bpf_map_type (BPF_MAP_TYPE_<name>). */
export const MAP_TYPE = {
  HASH: 1, ARRAY: 2, PERCPU_HASH: 5, PERCPU_ARRAY: 6, LRU_HASH: 9, LRU_PERCPU_HASH: 10, LPM_TRIE: 11, RINGBUF: 27,
} as const;
export type MapTypeName = keyof typeof MAP_TYPE;

/** enum bpf_prog_type (BPF_PROG_TYPE_<name>). */
export const PROG_TYPE = { SOCKET_FILTER: 1, SCHED_CLS: 3, RAW_TRACEPOINT: 17, TRACING: 26 } as const;
export type ProgTypeName = keyof typeof PROG_TYPE;

/** enum bpf_attach_type (BPF_<name>). */
export const ATTACH_TYPE = { TRACE_RAW_TP: 23, TCX_INGRESS: 46, TCX_EGRESS: 47 } as const;
export type AttachTypeName = keyof typeof ATTACH_TYPE;

/** enum bpf_link_type (BPF_LINK_TYPE_<name>). */
export const LINK_TYPE = { RAW_TRACEPOINT: 1, TRACING: 2, TCX: 11 } as const;

/** Map creation flags (BPF_F_<name>). */
export const MAP_FLAG = { NO_PREALLOC: 1, RDONLY_PROG: 1 << 7, WRONLY_PROG: 1 << 8 } as const;

/** MAP_UPDATE_ELEM flags (BPF_<name>). */
export const UPDATE = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

/**
 * Where a tcx attach goes relative to the programs already on the hook (BPF_F_BEFORE and
 * BPF_F_AFTER, 6.6 on): BEFORE with no anchor is the front. Neither this machine's bpf.h nor the
 * kernel's BTF has them (they are #defines); test/kernel/bpf-link.test.ts checks them by effect.
 */
export const TCX_FLAG = { BEFORE: 1 << 3, AFTER: 1 << 4 } as const;

/** Loader conventions in instructions: ld_imm64's src_reg when imm is a map's fd (BPF_<name>). */
export const PSEUDO = { PSEUDO_MAP_FD: 1, PSEUDO_MAP_VALUE: 2 } as const;

/** BPF_OBJ_NAME_LEN: map and program names, NUL included. */
export const OBJ_NAME_LEN = 16;

/** Verdicts a tc program returns: TCX_NEXT (6.6 on) is TC_ACT_UNSPEC. */
export const TCX = { NEXT: -1, PASS: 0, DROP: 2 } as const;

/** A field: its byte offset and size. */
export type Field = readonly [offset: number, size: number];

/**
 * Where each field gauze writes sits in union bpf_attr, per command. `$in` names the union's
 * member holding the fields (a named struct) or, for the anonymous ones, a field only that
 * struct has; `$size` is what gauze passes as the attr size (the end of its last field).
 */
export const ATTR = {
  MAP_CREATE: {
    $in: "map_type", $size: 72,
    map_type: [0, 4], key_size: [4, 4], value_size: [8, 4], max_entries: [12, 4], map_flags: [16, 4],
    map_name: [28, 16], btf_fd: [48, 4], btf_key_type_id: [52, 4], btf_value_type_id: [56, 4], map_extra: [64, 8],
  },
  MAP_ELEM: {
    $in: "key", $size: 32,
    map_fd: [0, 4], key: [8, 8], value: [16, 8], next_key: [16, 8], flags: [24, 8],
  },
  PROG_LOAD: {
    $in: "prog_type", $size: 144,
    prog_type: [0, 4], insn_cnt: [4, 4], insns: [8, 8], license: [16, 8], log_level: [24, 4], log_size: [28, 4],
    log_buf: [32, 8], kern_version: [40, 4], prog_flags: [44, 4], prog_name: [48, 16], expected_attach_type: [68, 4],
    prog_btf_fd: [72, 4], func_info_rec_size: [76, 4], func_info: [80, 8], func_info_cnt: [88, 4],
    line_info_rec_size: [92, 4], line_info: [96, 8], line_info_cnt: [104, 4], attach_btf_id: [108, 4],
    attach_btf_obj_fd: [112, 4], log_true_size: [140, 4],
  },
  OBJ: {
    $in: "pathname", $size: 16,
    pathname: [0, 8], bpf_fd: [8, 4], file_flags: [12, 4],
  },
  TEST_RUN: {
    $in: "test", $size: 72,
    prog_fd: [0, 4], retval: [4, 4], data_size_in: [8, 4], data_size_out: [12, 4], data_in: [16, 8], data_out: [24, 8],
    repeat: [32, 4], duration: [36, 4], ctx_size_in: [40, 4], ctx_size_out: [44, 4], ctx_in: [48, 8], ctx_out: [56, 8],
    flags: [64, 4], cpu: [68, 4],
  },
  GET_FD_BY_ID: {
    $in: "next_id", $size: 12,
    prog_id: [0, 4], map_id: [0, 4], btf_id: [0, 4], link_id: [0, 4], open_flags: [8, 4],
  },
  INFO: {
    $in: "info", $size: 16,
    bpf_fd: [0, 4], info_len: [4, 4], info: [8, 8],
  },
  QUERY: {
    $in: "query", $size: 64,
    target_ifindex: [0, 4], attach_type: [4, 4], query_flags: [8, 4], attach_flags: [12, 4], prog_ids: [16, 8],
    count: [24, 4], link_ids: [40, 8], revision: [56, 8],
  },
  RAW_TRACEPOINT: {
    $in: "raw_tracepoint", $size: 16,
    name: [0, 8], prog_fd: [8, 4],
  },
  BTF_LOAD: {
    $in: "btf_log_buf", $size: 32,
    btf: [0, 8], btf_log_buf: [8, 8], btf_size: [16, 4], btf_log_size: [20, 4], btf_log_level: [24, 4], btf_log_true_size: [28, 4],
  },
  LINK_CREATE: {
    $in: "link_create", $size: 32,
    prog_fd: [0, 4], target_ifindex: [4, 4], target_fd: [4, 4], attach_type: [8, 4], flags: [12, 4],
    "tcx.relative_fd": [16, 4], "tcx.relative_id": [16, 4], "tcx.expected_revision": [24, 8],
  },
  LINK_UPDATE: {
    $in: "link_update", $size: 16,
    link_fd: [0, 4], new_prog_fd: [4, 4], flags: [8, 4], old_prog_fd: [12, 4],
  },
  LINK_DETACH: {
    $in: "link_detach", $size: 4,
    link_fd: [0, 4],
  },
} as const satisfies Record<string, Record<string, Field | string | number>>;

/** What OBJ_GET_INFO_BY_FD fills in, for the fields gauze reads (struct bpf_<kind>_info). */
export const INFO = {
  bpf_prog_info: {
    $size: 224,
    type: [0, 4], id: [4, 4], tag: [8, 8], xlated_prog_len: [20, 4], nr_map_ids: [52, 4], map_ids: [56, 8],
    name: [64, 16], btf_id: [128, 4], run_time_ns: [192, 8], run_cnt: [200, 8], verified_insns: [216, 4],
  },
  bpf_map_info: {
    $size: 80,
    type: [0, 4], id: [4, 4], key_size: [8, 4], value_size: [12, 4], max_entries: [16, 4], map_flags: [20, 4],
    name: [24, 16], btf_id: [64, 4],
  },
  bpf_link_info: {
    $size: 32,
    type: [0, 4], id: [4, 4], prog_id: [8, 4],
    "raw_tracepoint.tp_name": [16, 8], "raw_tracepoint.tp_name_len": [24, 4],
    "tcx.ifindex": [16, 4], "tcx.attach_type": [20, 4],
  },
} as const satisfies Record<string, Record<string, Field | number>>;

/** Program types by the name gauze's section conventions and messages use. */
export function progTypeName(n: number): string {
  return (Object.entries(PROG_TYPE).find(([, v]) => v === n)?.[0] ?? `type ${n}`).toLowerCase();
}

export function mapTypeName(n: number): string {
  return (Object.entries(MAP_TYPE).find(([, v]) => v === n)?.[0] ?? `type ${n}`).toLowerCase();
}
