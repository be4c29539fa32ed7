// gauze's container image, built with podman from local files only (no base image, nothing
// pulled): a root filesystem of the gauze executable and exactly what it runs at run time,
// found with ldd rather than listed by hand:
//   /usr/local/bin/gauze                the executable (agent, install-cni, uninstall, plugin)
//   /usr/sbin/xtables-nft-multi         iptables, iptables-save, iptables-restore (and ip6tables*)
//   /usr/lib/<arch>/xtables/*.so        iptables' match and target modules (comment, MASQUERADE, ...)
//   /usr/sbin/nft                       the NetworkPolicy table (one transaction per change)
//   the shared libraries all of them load, and the dynamic loader
//   /etc/ssl/certs/ca-certificates.crt  to check an etcd server's certificate against public CAs
//   /etc/protocols, /etc/passwd, /etc/group   what libc and iptables look up
// The nft variant of iptables: what Debian 12, current kind node images and kube-proxy's
// default use; rules of the two variants land in different kernel subsystems.
import { copyFileSync, lstatSync, renameSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { runSync } from "../kernel/spawn.ts";
import { GAUZE_VERSION } from "../version.ts";
import { IMAGE_BINARY } from "./manifest.ts";

export interface PodmanStore {
  /** podman's --root and --runroot (the lab keeps its own); absent: podman's defaults. */
  root?: string;
  runroot?: string;
}

export function podmanArgs(s: PodmanStore): string[] {
  return s.root ? ["--root", s.root, "--runroot", s.runroot ?? join(s.root, "run"), "--storage-driver", "vfs"] : [];
}

export interface ImageReport {
  tag: string;
  /** Bytes podman reports for the image. */
  size: number;
  files: { path: string; bytes: number }[];
  ms: number;
}

export class ImageError extends Error {}

const IPTABLES_MULTI = "/usr/sbin/xtables-nft-multi";
/** nft: the agent's NetworkPolicy table goes in through it (one transaction per change). */
const NFT = "/usr/sbin/nft";
const IPTABLES_NAMES = ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"];
const ETC_FILES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/protocols"];

/** Shared libraries a binary loads (ldd's resolved paths, the loader included). */
function libsOf(file: string): string[] {
  const r = runSync(["ldd", file]);
  if (r.status !== 0) return []; // not dynamic
  const out: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

function xtablesDir(): string {
  for (const d of ["/usr/lib/x86_64-linux-gnu/xtables", "/usr/lib/aarch64-linux-gnu/xtables", "/usr/lib/xtables", "/usr/lib64/xtables"]) if (existsSync(d)) return d;
  throw new ImageError("iptables' modules (xtables/*.so) not found: apt-get install iptables");
}

/** Copies `src` to the same path under `root`, following symlinks for the content but keeping the name. */
function place(root: string, src: string, as = src): void {
  const dst = join(root, as);
  if (existsSync(dst)) return;
  mkdirSync(dirname(dst), { recursive: true });
  copyFileSync(src, dst);
}

/** The root filesystem, in a fresh directory the caller removes. */
export function assembleRootfs(executable: string): string {
  if (!existsSync(IPTABLES_MULTI)) throw new ImageError(`${IPTABLES_MULTI} not found: apt-get install iptables`);
  const root = mkdtempSync(join(tmpdir(), "gauze-rootfs-"));
  place(root, executable, IMAGE_BINARY);
  place(root, IPTABLES_MULTI);
  if (!existsSync(NFT)) throw new ImageError(`${NFT} not found: apt-get install nftables`);
  place(root, NFT);
  for (const n of IPTABLES_NAMES) symlinkSync("xtables-nft-multi", join(root, "usr/sbin", n));
  const xt = xtablesDir();
  const modules = readdirSync(xt).filter((f) => f.endsWith(".so"));
  for (const f of modules) {
    const p = join(xt, f);
    // Some modules are symlinks to others (libipt_X -> libxt_X): keep them as links.
    if (lstatSync(p).isSymbolicLink()) {
      mkdirSync(join(root, xt), { recursive: true });
      symlinkSync(readlinkSync(p), join(root, p));
    } else place(root, p);
  }
  const libs = new Set<string>();
  for (const f of [executable, IPTABLES_MULTI, NFT, ...modules.map((m) => join(xt, m))]) for (const l of libsOf(f)) libs.add(l);
  for (const l of libs) place(root, l);
  for (const f of ETC_FILES) if (existsSync(f)) place(root, f);
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/usr/sbin/nologin\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\n");
  // Mount points and scratch space the DaemonSet and the runtime use.
  for (const d of ["tmp", "run/gauze", "etc/cni/net.d", "etc/gauze", "host/opt/cni/bin", "var/lib/cni/networks", "proc", "sys", "dev"]) mkdirSync(join(root, d), { recursive: true });
  // Debian's libraries live in /lib/<arch> (a symlink to /usr/lib/<arch> there): keep both working.
  for (const l of ["lib", "lib64"]) if (!existsSync(join(root, l)) && existsSync(join(root, "usr", l))) symlinkSync(`usr/${l}`, join(root, l));
  return root;
}

function walk(root: string, dir = root): { path: string; bytes: number }[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return walk(root, p);
    return [{ path: "/" + relative(root, p), bytes: e.isSymbolicLink() ? 0 : statSync(p).size }];
  });
}

/** Builds `tag` from `executable` into podman's store (the default one, or `store`). */
export function buildImage(o: { executable: string; tag?: string; store?: PodmanStore; progress?: (line: string) => void }): ImageReport {
  const t0 = performance.now();
  const tag = o.tag ?? `localhost/gauze:${GAUZE_VERSION}`;
  const say = o.progress ?? (() => undefined);
  const ctx = mkdtempSync(join(tmpdir(), "gauze-image-"));
  try {
    say(`assembling the root filesystem from ${o.executable}`);
    const rootfs = assembleRootfs(o.executable);
    try {
      renameSync(rootfs, join(ctx, "rootfs"));
      const files = walk(join(ctx, "rootfs")).sort((a, b) => a.path.localeCompare(b.path));
      writeFileSync(join(ctx, "Containerfile"), [
        "FROM scratch",
        "COPY rootfs/ /",
        `LABEL org.opencontainers.image.title="gauze" org.opencontainers.image.version="${GAUZE_VERSION}" org.opencontainers.image.description="gauze pod networking: agent, CNI plugin, install-cni, uninstall"`,
        `ENTRYPOINT ["${IMAGE_BINARY}"]`,
        'CMD ["agent"]',
        "",
      ].join("\n"));
      say(`podman build -t ${tag} (${files.length} files)`);
      const r = runSync(["podman", ...podmanArgs(o.store ?? {}), "build", "--pull=never", "--layers=false", "--quiet", "-t", tag, "-f", join(ctx, "Containerfile"), ctx]);
      if (r.status !== 0) throw new ImageError(`podman build failed: ${r.stderr.trim() || r.stdout.trim()}${r.status === 127 ? " (apt-get install podman)" : ""}`);
      const size = Number(runSync(["podman", ...podmanArgs(o.store ?? {}), "image", "inspect", "--format", "{{.Size}}", tag]).stdout.trim());
      return { tag, size, files, ms: Math.round(performance.now() - t0) };
    } finally {
      rmSync(rootfs, { recursive: true, force: true }); // if the rename did not happen
    }
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}
