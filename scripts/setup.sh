#!/usr/bin/env bash
# Installs everything gauze builds and tests with on a fresh Debian 12 machine (as root):
# Debian's packages for the kernel tools, the reference CNI plugins and a real container
# runtime, then the npm dependencies (bun comes from npm). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
packages=(
  iproute2 iptables nftables iputils-ping util-linux procps ethtool  # the kernel side
  containernetworking-plugins   # the reference Go plugins: side-by-side anchor, portmap chaining
  podman runc busybox-static    # a real CNI caller for the runtime test
  tcpdump tshark iperf3 sockperf time  # captures, the dissector's oracle, benchmarks (request-response latency; GNU time for peak RSS and CPU)
  etcd-server                   # the etcd registry's tests and `gauze lab up --store etcd`
  strace linux-libc-dev         # tests: counting the plugin's execs; netlink numbers against the uapi headers
  wireguard-go wireguard-tools  # the wireguard backend in userspace (this kernel has no module); wg as the test oracle
  openssl                       # the lab's Kubernetes API (manifest mode): its CA and certificate
  chromium                      # gauze ui's test: a real browser, driven by playwright-core
  clang llvm libbpf-dev bpftool # the eBPF programs (bpf/*.c, compiled by npm run build); bpftool as the loader's test oracle
)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # With recommends, as on the machine where the suite was developed (podman relies on some).
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || { echo "setup: Node.js 20 is required (apt-get install nodejs npm)" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
npm run build
