// iptables: forwarding of the pod network, and masquerading of what leaves it.
import { iptables, iptablesSave } from "../../kernel/iptables.ts";
import { ensureMasquerade, forwardRules } from "../../agent/masquerade.ts";
import { type Check, ok, skip } from "../check.ts";
import { fixCommands } from "../context.ts";

export const filteringChecks: Check[] = [
  {
    id: "filtering.forward", group: "filtering", title: "FORWARD lets the pod network through",
    run(ctx) {
      const net = ctx.agent?.network;
      if (!net) return skip("no agent report: pod network unknown");
      const rules = iptables(["-S", "FORWARD"]);
      const policy = /^-P FORWARD (\w+)/m.exec(rules)?.[1] ?? "ACCEPT";
      const bridge = ctx.agent?.bridge ?? "cni0";
      const chain = rules.includes("-j GAUZE-FWD") ? iptables(["-S", "GAUZE-FWD"]) : "";
      const accepted = forwardRules(net, bridge).every((r) => chain.includes(r));
      const explicit = rules.split("\n").some((l) => l.includes(net) && l.endsWith("-j ACCEPT"));
      if (policy !== "DROP" || accepted || explicit) return ok(`FORWARD policy ${policy}${accepted ? `, GAUZE-FWD accepts ${net} on ${bridge}` : ""}`);
      return {
        status: "fail", evidence: [`FORWARD policy DROP and no rule accepts ${net}`, "pod traffic between nodes and to the outside is dropped here (Docker sets this policy, for one)"],
        fix: `iptables -I FORWARD -s ${net} -j ACCEPT; iptables -I FORWARD -d ${net} -j ACCEPT (${fixCommands(ctx).doctorFix} restores the agent's GAUZE-FWD chain)`,
        repair: () => { ensureMasquerade(net, ctx.agent?.ipMasq ?? true, bridge); return "restored GAUZE-FWD and GAUZE-POSTRTG"; },
      };
    },
  },
  {
    id: "filtering.masquerade", group: "filtering", title: "pod traffic leaving the pod network is masqueraded",
    run(ctx) {
      const net = ctx.agent?.network;
      if (!net) return skip("no agent report: pod network unknown");
      if (ctx.agent?.ipMasq === false) return ok("the agent runs with --no-ip-masq: the plugin masquerades per pod");
      if (ctx.agent?.backend === "macvlan") return skip("backend macvlan: pods leave through the underlay's router, not through this node");
      const nat = iptablesSave("nat");
      if (nat.includes("-j GAUZE-POSTRTG") && nat.includes(`-A GAUZE-POSTRTG -s ${net} ! -d 224.0.0.0/4 -j MASQUERADE`)) return ok(`GAUZE-POSTRTG masquerades ${net}`);
      return {
        status: "fail", evidence: [`no MASQUERADE for ${net} in nat POSTROUTING`], fix: `${fixCommands(ctx).doctorFix} restores the agent's chains; so does ${fixCommands(ctx).restartAgent}`,
        repair: () => { ensureMasquerade(net, true, ctx.agent?.bridge ?? "cni0"); return "restored GAUZE-POSTRTG"; },
      };
    },
  },
];
