// DNS targets of a client's `servers`: the gRPC target syntax, read and
// resolved. node:dns is loaded only when a target is resolved, so a client
// with plain addresses never loads it: Deno, Bun and Node.js all have its
// Resolver, and it alone gives TTLs on all three (Deno.resolveDns does not).

import { quote } from "../_quote.ts";
import { checkHost, checkPort } from "../_checks.ts";

/** A `servers` entry naming a DNS name to resolve, and the port to use. */
export interface DnsTarget {
  /** The entry as given, such as `"dns:///api.internal:8212"`. */
  readonly text: string;
  /** The DNS server to ask, as `"host:port"`, or undefined for the system's. */
  readonly nameServer: string | undefined;
  /** The name to resolve. */
  readonly name: string;
  /** The port of every address it resolves to. */
  readonly port: number;
}

/** A resolved target: its addresses, and how long the answer holds. */
export interface Answer {
  readonly addresses: string[];
  /** The least TTL of its records in ms, or undefined if not known. */
  readonly ttlMs: number | undefined;
}

/**
 * Resolves a target: the runtime's DNS, or a fake in unit tests. An abort
 * of `signal` cancels the questions under way.
 */
export type Resolve = (
  target: DnsTarget,
  signal: AbortSignal,
) => Promise<Answer>;

const TARGET = /^dns:\/\/([^/]*)\/(.+)$/;

/**
 * Reads `"dns:///NAME:PORT"` or `"dns://DNS_HOST[:DNS_PORT]/NAME:PORT"`.
 * @throws {TypeError} If the entry is not of that form.
 */
export function parseDnsTarget(label: string, entry: string): DnsTarget {
  const invalid = (why: string) =>
    new TypeError(
      `Invalid ${label} ${quote(entry)}: ${why} ` +
        `("dns:///name:port" or "dns://dns-host:dns-port/name:port")`,
    );
  const match = TARGET.exec(entry);
  if (!match) throw invalid("expected a DNS target");
  const [, authority, rest] = match;
  const hostPort = /^(?:\[([^\]]+)\]|([^:/[\]]+)):(\d+)$/;
  const target = hostPort.exec(rest);
  if (!target) throw invalid("expected a name and a port after the slash");
  const name = checkHost(`${label} name`, target[1] ?? target[2]);
  const port = checkPort(`${label} port`, Number(target[3]));
  let nameServer: string | undefined;
  if (authority !== "") {
    const server = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(authority);
    if (!server) throw invalid("expected a DNS server as host or host:port");
    const host = server[1] ?? server[2];
    const dnsPort = server[3] === undefined
      ? 53
      : checkPort(`${label} DNS port`, Number(server[3]));
    nameServer = host.includes(":")
      ? `[${host}]:${dnsPort}`
      : `${host}:${dnsPort}`;
  }
  return { text: entry, nameServer, name, port };
}

/** A record with its TTL, in seconds, as node:dns gives it. */
interface TtlRecord {
  address: string;
  ttl: number;
}

/** `resolve4` or `resolve6` with `{ ttl: true }`. */
type ResolveWithTtl = (
  name: string,
  options: { ttl: true },
  callback: (error: Error | null, records: TtlRecord[]) => void,
) => void;

/** The part of node:dns used here. */
interface DnsModule {
  Resolver: new (options?: { timeout?: number; tries?: number }) => {
    setServers(servers: string[]): void;
    cancel(): void;
    resolve4: ResolveWithTtl;
    resolve6: ResolveWithTtl;
  };
  lookup(
    name: string,
    options: { all: true },
    callback: (
      error: Error | null,
      addresses: Array<{ address: string; family: number }>,
    ) => void,
  ): void;
}

/**
 * How long one DNS query may take, and how often it is tried (Deno doubles
 * the wait at each try: 1 s + 2 s). A failure keeps the last answer and is
 * asked again soon, so a short wait costs nothing.
 */
const QUERY_TIMEOUT_MS = 1000;
const QUERY_TRIES = 2;

let dnsModule: Promise<DnsModule> | undefined;

/**
 * Resolves a target's A and AAAA records with their TTLs. With the system's
 * DNS (no DNS server given) a name its servers do not know (`localhost`, a
 * name in /etc/hosts) is looked up as the system would, without a TTL.
 */
export const resolveDns: Resolve = async (target, signal) => {
  // A variable specifier: the module graph of a client that never resolves
  // anything keeps node:dns out.
  const specifier = "node:dns";
  dnsModule ??= import(specifier) as Promise<DnsModule>;
  const dns = await dnsModule;
  const resolver = new dns.Resolver({
    timeout: QUERY_TIMEOUT_MS,
    tries: QUERY_TRIES,
  });
  if (target.nameServer !== undefined) {
    try {
      resolver.setServers([target.nameServer]);
    } catch (error) {
      // Deno's node:dns asks for the network interfaces here.
      throw Object.assign(
        new Error(
          `node:dns cannot ask ${target.nameServer}: ${
            (error as Error)?.message ?? error
          } (on Deno: --allow-sys=networkInterfaces)`,
          { cause: error },
        ),
        { code: "EPERM" },
      );
    }
  }
  const query = (family: 4 | 6) =>
    new Promise<TtlRecord[]>((resolve, reject) =>
      (family === 4 ? resolver.resolve4 : resolver.resolve6).call(
        resolver,
        target.name,
        { ttl: true },
        (error, records) => error ? reject(error) : resolve(records),
      )
    );
  const cancel = () => resolver.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  let v4, v6;
  try {
    [v4, v6] = await Promise.allSettled([query(4), query(6)]);
  } finally {
    signal.removeEventListener("abort", cancel);
  }
  signal.throwIfAborted();
  const records = [
    ...(v4.status === "fulfilled" ? v4.value : []),
    ...(v6.status === "fulfilled" ? v6.value : []),
  ];
  if (records.length > 0) {
    return {
      addresses: unique(records.map((record) => record.address)),
      ttlMs: Math.min(...records.map((record) => record.ttl)) * 1000,
    };
  }
  const failure = v4.status === "rejected" ? v4.reason : undefined;
  if (target.nameServer !== undefined) {
    throw failure ??
      Object.assign(new Error("No address"), { code: "ENODATA" });
  }
  const found = await new Promise<Array<{ address: string }>>(
    (resolve, reject) =>
      dns.lookup(
        target.name,
        { all: true },
        (error, addresses) =>
          error ? reject(failure ?? error) : resolve(addresses),
      ),
  );
  return {
    addresses: unique(found.map((entry) => entry.address)),
    ttlMs: undefined,
  };
};

function unique(addresses: string[]): string[] {
  return Array.from(new Set(addresses));
}

/** The code of a resolver's error, such as `"ENOTFOUND"`. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "EUNKNOWN";
}
