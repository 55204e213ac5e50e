// A real DNS server for the tests: dnsmasq on 127.0.0.77 and a free port,
// answering only from a hosts file in a temporary directory (TTL 1 s), and
// reloaded (SIGHUP) when the records change. `startDns` returns a reason to
// skip, as a string, where dnsmasq is not installed or cannot run; a test file
// asks `dnsmasqProblem()` before registering its tests, to skip them there.
//
//   const skip = await dnsmasqProblem();
//   test("…", async () => {
//     const dns = await startDns({ "svc.test": ["127.0.0.11", "::1"] });
//     assert(typeof dns !== "string", String(dns));
//     try { ...dns.server...; await dns.set({ "svc.test": ["127.0.0.12"] }); }
//     finally { await dns.stop(); }
//   }, { skip });
//
// A name not in the records is NXDOMAIN; a name with only IPv4 addresses has
// no AAAA record (NODATA), and the other way round. Nothing is forwarded.
//
// Files are made, written and removed by child processes (sh, mktemp, cat,
// mv, rm), so under Deno the tests need no permission to write or to read
// the environment: --allow-run and --allow-net do. The harness's own queries
// go through Deno.resolveDns under Deno, since node:dns's
// Resolver.setServers() there needs --allow-sys=networkInterfaces too.

import { isIP } from "node:net";
import { createSocket } from "node:dgram";
import { promises as dnsPromises } from "node:dns";
import { type Child, spawn } from "./_spawn.ts";

/** The loopback address dnsmasq listens on. */
export const DNS_HOST = "127.0.0.77";

/** Names, each with its IPv4 and/or IPv6 addresses. */
export type DnsRecords = Record<string, string[]>;

/** A running dnsmasq. `stop()` (or `await using`) ends it. */
export interface Dns extends AsyncDisposable {
  /** The address it listens on: {@linkcode DNS_HOST}. */
  readonly host: string;
  /** The UDP and TCP port it listens on. */
  readonly port: number;
  /** `"host:port"`, as `Resolver.setServers()` takes it. */
  readonly server: string;
  /**
   * Replaces every record: rewrites the hosts file, reloads dnsmasq, and
   * resolves once dnsmasq answers exactly the new set (names that left are
   * NXDOMAIN). Rejects if it does not within a few seconds.
   */
  set(records: DnsRecords): Promise<void>;
  /** The A (`"A"`) or AAAA records of `name` it answers now; [] for none. */
  query(name: string, type: "A" | "AAAA"): Promise<string[]>;
  /** What dnsmasq logged so far (stdout and stderr). */
  log(): string;
  /** Ends dnsmasq and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Ports tried when the one found free is taken before dnsmasq binds it. */
const PORT_ATTEMPTS = 5;
/** How long dnsmasq may take to start (ms). */
const START_MS = 5000;
/** How long the answers may take to match the records after a change (ms). */
const SETTLE_MS = 5000;
/** Most query rounds while waiting for the answers to match. */
const SETTLE_ROUNDS = 200;
/** Longest one query of the harness may take (ms). */
const QUERY_MS = 2000;

/**
 * Why dnsmasq cannot serve the tests here (as `startDns` says it), or
 * undefined where it can: it is started once and stopped.
 */
export async function dnsmasqProblem(): Promise<string | undefined> {
  const dns = await startDns({ "probe.test": ["127.0.0.1"] });
  if (typeof dns === "string") return dns;
  await dns.stop();
  return undefined;
}

/**
 * Starts dnsmasq answering `records`. Resolves once it answers them; with a
 * string saying why where it cannot run (dnsmasq missing, no permission to
 * run it, 127.0.0.77 not usable).
 */
export async function startDns(records: DnsRecords): Promise<Dns | string> {
  const hosts = hostsFile(records);
  const found = await findDnsmasq();
  if (found.command === undefined) return found.reason;
  const command = found.command;

  const dir = await sh(
    'mktemp -d "${TMPDIR:-/tmp}/tcp-framework-dnsmasq.XXXXXX"',
  );
  if (dir.code !== 0 || dir.out.trim() === "") {
    return `cannot make a temporary directory: ${dir.out.trim()}`;
  }
  const path = dir.out.trim();
  const file = `${path}/hosts`;
  let started: { child: Child; port: number } | string | undefined;
  try {
    await writeFile(file, hosts);
    started = await startDnsmasq(command, file);
  } finally {
    if (typeof started !== "object") await removeDir(path);
  }
  if (typeof started === "string") return started;

  const { child, port } = started;
  const server = `${DNS_HOST}:${port}`;
  let current = records;
  let stopped: Promise<void> | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  const query = (name: string, type: "A" | "AAAA") =>
    queryServer(port, name, type);
  const dns: Dns = {
    host: DNS_HOST,
    port,
    server,
    query,
    log: () => child.stdout(),
    set(next) {
      const done = queue.then(async () => {
        if (stopped) throw new Error("set() after stop()");
        const content = hostsFile(next);
        const before = current;
        current = next;
        await writeFile(file, content);
        child.signal("SIGHUP");
        await settle(query, next, Object.keys(before), child);
      });
      queue = done.catch(() => {});
      return done;
    },
    stop() {
      stopped ??= (async () => {
        await queue;
        await child.kill();
        await removeDir(path);
      })();
      return stopped;
    },
    [Symbol.asyncDispose]: () => dns.stop(),
  };
  try {
    await settle(query, records, [], child);
  } catch (error) {
    await dns.stop();
    throw error;
  }
  return dns;
}

/** The hosts file of `records` ("address name" lines), checked. */
function hostsFile(records: DnsRecords): string {
  let text = "";
  for (const [name, addresses] of Object.entries(records)) {
    if (!/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(name)) {
      throw new TypeError(`Invalid DNS name ${JSON.stringify(name)}`);
    }
    if (!Array.isArray(addresses)) {
      throw new TypeError(`Addresses of ${name} must be an array`);
    }
    for (const address of addresses) {
      if (typeof address !== "string" || isIP(address) === 0) {
        throw new TypeError(
          `Invalid address ${JSON.stringify(address)} of ${name}`,
        );
      }
      text += `${address} ${name}\n`;
    }
  }
  return text;
}

/**
 * The dnsmasq command that runs (`dnsmasq --version` exits 0), or why none
 * does. Debian installs it in /usr/sbin, which a non-root PATH often lacks.
 */
async function findDnsmasq(): Promise<
  { command: string; reason?: undefined } | {
    command?: undefined;
    reason: string;
  }
> {
  for (
    const command of [
      "dnsmasq",
      "/usr/sbin/dnsmasq",
      "/usr/local/sbin/dnsmasq",
      "/opt/homebrew/sbin/dnsmasq",
    ]
  ) {
    try {
      const child = await spawn(command, ["--version"]);
      await child.closeStdin();
      if (await child.exited === 0) return { command };
    } catch (error) {
      // Under Deno without --allow-run every command fails so: say that.
      const name = (error as Error)?.name;
      if (name === "NotCapable" || name === "PermissionDenied") {
        return { reason: `cannot run dnsmasq: ${(error as Error).message}` };
      }
    }
  }
  return {
    reason: "dnsmasq is not installed (apt-get install dnsmasq-base)",
  };
}

/**
 * Runs dnsmasq on a port that was free, trying another if it was taken in
 * between. Resolves once dnsmasq says it started (its sockets are bound by
 * then), or with why it could not.
 */
async function startDnsmasq(
  command: string,
  file: string,
): Promise<{ child: Child; port: number } | string> {
  let last = "";
  for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
    let port: number;
    try {
      port = await freeUdpPort();
    } catch (error) {
      return `cannot bind ${DNS_HOST}: ${(error as Error)?.message ?? error}`;
    }
    const args = [
      "--conf-file=/dev/null", // not /etc/dnsmasq.conf
      "--keep-in-foreground",
      "--pid-file=", // none (the default is /run/dnsmasq.pid)
      "--log-facility=-", // stderr, not syslog
      "--no-hosts", // not /etc/hosts
      `--addn-hosts=${file}`,
      "--no-resolv", // not /etc/resolv.conf,
      "--local=/#/", // and nothing forwarded: NXDOMAIN, not REFUSED
      "--local-ttl=1",
      "--bind-interfaces",
      `--listen-address=${DNS_HOST}`,
      `--port=${port}`,
      // As root dnsmasq would run as nobody, who may not read the hosts
      // file in its private directory; as anyone else it ignores --user.
      "--user=root",
    ];
    // Through sh, so its stderr joins stdout, where waitFor looks.
    const child = await spawn("sh", [
      "-c",
      'exec "$0" "$@" 2>&1',
      command,
      ...args,
    ]);
    await child.closeStdin();
    try {
      await child.waitFor(/\bstarted, version /, START_MS);
      return { child, port };
    } catch {
      const code = await child.kill();
      last = lastLine(child.stdout()) || `exit code ${code}`;
      if (/address already in use/i.test(last)) continue;
      return `dnsmasq did not start: ${last}`;
    }
  }
  return `dnsmasq did not start in ${PORT_ATTEMPTS} tries: ${last}`;
}

/** A UDP port that was free on {@linkcode DNS_HOST} a moment ago. */
function freeUdpPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ address: DNS_HOST, port: 0 }, () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once dnsmasq answers exactly `records` for each of their names,
 * and NXDOMAIN for each of `gone` not among them. Bounded in rounds and time.
 */
async function settle(
  query: (name: string, type: "A" | "AAAA") => Promise<string[]>,
  records: DnsRecords,
  gone: string[],
  child: Child,
): Promise<void> {
  const expected: Array<[string, "A" | "AAAA", string]> = [];
  for (const name of new Set([...Object.keys(records), ...gone])) {
    const addresses = records[name] ?? [];
    const v4 = addresses.filter((a) => isIP(a) === 4);
    const v6 = addresses.filter((a) => isIP(a) === 6);
    expected.push([name, "A", canonical(v4)], [name, "AAAA", canonical(v6)]);
  }
  // Nothing to look at: any answer says dnsmasq is up.
  if (expected.length === 0) expected.push(["ready.invalid", "A", "[]"]);
  const deadline = performance.now() + SETTLE_MS;
  let seen = "";
  for (let round = 0; round < SETTLE_ROUNDS; round++) {
    let matched = true;
    try {
      for (const [name, type, want] of expected) {
        const got = canonical(await query(name, type));
        if (got !== want) {
          seen = `${type} ${name}: ${got}, expected ${want}`;
          matched = false;
          break;
        }
      }
    } catch (error) {
      seen = String((error as Error)?.message ?? error);
      matched = false;
    }
    if (matched) return;
    if (performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(
    `dnsmasq does not answer the records set (${seen}); it logged:\n${child.stdout()}`,
  );
}

/** Addresses in one comparable form (IPv6 expanded, sorted). */
function canonical(addresses: string[]): string {
  return JSON.stringify(addresses.map(expand).sort());
}

/** An IPv6 address with every group in full; IPv4 as it is. */
function expand(address: string): string {
  if (isIP(address) !== 6 || address.includes(".")) return address;
  const [head, tail = ""] = address.toLowerCase().split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = address.includes("::")
    ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right]
    : left;
  return groups.map((group) => group.padStart(4, "0")).join(":");
}

/**
 * One query to dnsmasq on `port`: Deno.resolveDns under Deno (needs only
 * --allow-net), a node:dns Resolver elsewhere. No such name, or no record of
 * the type, is [].
 */
async function queryServer(
  port: number,
  name: string,
  type: "A" | "AAAA",
): Promise<string[]> {
  if ("Deno" in globalThis) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), QUERY_MS);
    try {
      return await Deno.resolveDns(name, type, {
        nameServer: { ipAddr: DNS_HOST, port },
        signal: abort.signal,
      });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
  const resolver = new dnsPromises.Resolver({ timeout: QUERY_MS, tries: 1 });
  resolver.setServers([`${DNS_HOST}:${port}`]);
  try {
    return type === "A"
      ? await resolver.resolve4(name)
      : await resolver.resolve6(name);
  } catch (error) {
    const code = (error as { code?: string })?.code;
    if (code === "ENOTFOUND" || code === "ENODATA") return [];
    throw error;
  }
}

/** Writes `text` to `file` whole (a new file renamed over the old one). */
async function writeFile(file: string, text: string): Promise<void> {
  const result = await sh(
    'cat > "$1.new" && mv -f "$1.new" "$1"',
    [file],
    text,
  );
  if (result.code !== 0) {
    throw new Error(`Cannot write ${file}: ${result.out.trim()}`);
  }
}

async function removeDir(path: string): Promise<void> {
  await sh('rm -rf -- "$1"', [path]);
}

/** Runs a sh script with `args` as $1...; its stdout and stderr together. */
async function sh(
  script: string,
  args: string[] = [],
  input?: string,
): Promise<{ code: number; out: string }> {
  const child = await spawn("sh", [
    "-c",
    `exec 2>&1; ${script}`,
    "sh",
    ...args,
  ]);
  // A write fails only if sh is gone already: its exit code tells.
  if (input !== undefined) await child.write(input).catch(() => {});
  await child.closeStdin();
  const code = await child.exited;
  return { code, out: child.stdout() };
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1)?.trim() ?? "";
}
