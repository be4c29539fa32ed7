// ui.test.ts again, with the lab's agents on the packet ring and tracefs (`--observer ring`): the
// page shows the same flows, drops and packets with eBPF forced off.
export {};
process.env.GAUZE_TEST_OBSERVER = "ring";
await import("./ui.test.ts");
