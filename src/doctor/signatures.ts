// Known failure signatures in agent and kubelet messages, each with what it means and the fix.
// The words are the ones users paste into search engines (flannel's and kubelet's own).

export interface Signature {
  id: string;
  pattern: RegExp;
  meaning: string;
  fix: string;
}

export const SIGNATURES: Signature[] = [
  { id: "br-netfilter", pattern: /Failed to check br_netfilter|bridge-nf-call-iptables: no such file/i,
    meaning: "the br_netfilter module is not loaded on the node", fix: "modprobe br_netfilter && echo br_netfilter > /etc/modules-load.d/k8s.conf; sysctl -w net.bridge.bridge-nf-call-iptables=1" },
  { id: "subnet-file-missing", pattern: /(subnet file \S+ does not exist|open \/run\/(flannel|gauze)\/subnet\.env: no such file)/i,
    meaning: "the plugin ran before the node's agent wrote its subnet file", fix: "make the agent run on that node (its DaemonSet pod), then the pod's sandbox is retried" },
  { id: "pod-cidr-not-assigned", pattern: /pod cidr not assigned|node \S+ pod cidrs? not assigned|podCIDR.*(empty|not set)/i,
    meaning: "the node has no spec.podCIDR: the controller manager does not allocate node CIDRs", fix: "kubeadm init --pod-network-cidr=10.244.0.0/16 (or kube-controller-manager --allocate-node-cidrs=true --cluster-cidr=10.244.0.0/16)" },
  { id: "missing-plugin", pattern: /failed to find plugin "([^"]+)" in path \[([^\]]*)\]/,
    meaning: "a plugin named by the CNI config is not in the CNI bin dir", fix: "install the plugin into /opt/cni/bin (the reference plugins: containernetworking-plugins); gauze needs only its own binary" },
  { id: "cni-not-initialized", pattern: /cni plugin not initialized|no networks found in \/etc\/cni\/net\.d|NetworkPluginNotReady/i,
    meaning: "no CNI config on the node yet", fix: "install the CNI (its agent writes the config); check that the agent pod runs on this node" },
  { id: "vxlan-port", pattern: /(bind|listen).*(8472|4789).*address already in use/i,
    meaning: "another VXLAN (flannel, Calico, Cilium) holds the UDP port", fix: "remove the other CNI's VXLAN device, or give gauze another Backend Port" },
];

export function matchSignature(text: string): (Signature & { match: string }) | undefined {
  for (const s of SIGNATURES) {
    const m = s.pattern.exec(text);
    if (m) return { ...s, match: m[0] };
  }
  return undefined;
}
