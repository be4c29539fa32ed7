// observe.test.ts again, with the lab's agents on the packet ring and tracefs (`--observer ring`):
// eBPF forced off, every flow, drop and trace case must hold on the fallback path as well.
export {};
process.env.GAUZE_TEST_OBSERVER = "ring";
await import("./observe.test.ts");
