// The client's server set: the `servers` entries (addresses and DNS
// targets), what the DNS targets resolve to now, their refresh, and
// setServers(). It says what joined and what left; the pool acts on it.

import { quote } from "../_quote.ts";
import { checkHost, checkObject, checkPort } from "../_checks.ts";
import { ResolveError } from "../errors.ts";
import { type ServerAddress, serverName } from "./_pool.ts";
import {
  type DnsTarget,
  errorCode,
  parseDnsTarget,
  type Resolve,
  resolveDns,
} from "./_dns.ts";

/** One entry of `servers`: an address, or a DNS name to resolve. */
export type ServerEntry =
  | { readonly address: ServerAddress; readonly dns?: undefined }
  | { readonly dns: DnsTarget; readonly address?: undefined };

/** Resolutions of one target are at least this far apart. */
export const MIN_REFRESH_MS = 1000;
/** An answer is asked again after its TTL, but at least this often. */
export const MAX_REFRESH_MS = 30_000;

/**
 * Reads the `servers` option (or `setServers`' list) into entries, checked.
 * @throws {TypeError} If it is not a non-empty array of valid entries.
 */
export function parseServers(value: unknown, label = "servers"): ServerEntry[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new TypeError(
      `Invalid ${label} ${quote(value)}: expected a non-empty array`,
    );
  }
  return value.map((entry, i): ServerEntry => {
    const name = `${label}[${i}]`;
    if (typeof entry === "string") {
      if (entry.startsWith("dns:")) return { dns: parseDnsTarget(name, entry) };
      const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(entry);
      if (!match) {
        throw new TypeError(
          `Invalid ${name} ${
            quote(entry)
          }: expected "host:port", "[ipv6]:port" or "dns:///name:port"`,
        );
      }
      return {
        address: {
          host: match[1] ?? match[2],
          port: checkPort(name + " port", Number(match[3])),
        },
      };
    }
    checkObject(name, entry);
    const { host, port } = entry as ServerAddress;
    return {
      address: {
        host: checkHost(name + ".host", host),
        port: checkPort(name + ".port", port),
      },
    };
  });
}

/** What the membership tells its client. */
export interface MembershipHooks {
  /** The set changed: `added` joined, `removed` (by name) left. */
  changed(added: ServerAddress[], removed: string[]): void;
  /** A target could not be resolved (said once until it resolves again). */
  exception(error: unknown, server: string | undefined): void;
}

/** A DNS target's state: its last good answer and its next refresh. */
class Resolved {
  addresses: ServerAddress[] = [];
  timer: ReturnType<typeof setTimeout> | undefined;
  resolving: Promise<void> | undefined;
  /** When the last resolution started. */
  startedAt = -Infinity;
  /** Failures in a row, for the retry backoff; reported at the first. */
  failures = 0;
  /** When the next resolution is due. */
  dueAt = Infinity;

  constructor(readonly target: DnsTarget) {}
}

/** The current server set, from static addresses and DNS answers. */
export class Membership {
  #statics: ServerAddress[] = [];
  #targets = new Map<string, Resolved>();
  /** The set now, by name, in the order servers joined. */
  #current = new Map<string, ServerAddress>();
  /** Resolutions under way, of targets in the set or no longer. */
  #resolving = new Set<Promise<void>>();
  #closed = false;
  /** Cancels the questions under way at close(). */
  readonly #abort = new AbortController();
  readonly #shuffle: boolean;
  readonly #hooks: MembershipHooks;
  readonly #resolve: Resolve;

  constructor(
    shuffle: boolean,
    hooks: MembershipHooks,
    resolve: Resolve = resolveDns,
  ) {
    this.#shuffle = shuffle;
    this.#hooks = hooks;
    this.#resolve = resolve;
  }

  /** The servers in the set now, as `"host:port"`. */
  get servers(): string[] {
    return Array.from(this.#current.keys());
  }

  /**
   * Replaces the entries. Targets given again keep their last answer and
   * schedule; new ones are resolved at once.
   */
  set(entries: ServerEntry[]): void {
    const statics: ServerAddress[] = [];
    const targets = new Map<string, Resolved>();
    for (const entry of entries) {
      if (entry.address !== undefined) statics.push(entry.address);
      else {
        const text = entry.dns.text;
        targets.set(
          text,
          this.#targets.get(text) ?? targets.get(text) ??
            new Resolved(entry.dns),
        );
      }
    }
    for (const [text, resolved] of this.#targets) {
      if (!targets.has(text)) clearTimeout(resolved.timer);
    }
    this.#statics = this.#shuffled(statics);
    const fresh = Array.from(targets.values()).filter((resolved) =>
      !this.#targets.has(resolved.target.text)
    );
    this.#targets = targets;
    this.#update();
    for (const resolved of fresh) this.#refresh(resolved);
  }

  /**
   * A connection to `server` was lost: the targets it came from are asked
   * again soon (it may have left), but not within a second of the last time.
   */
  lost(server: string): void {
    if (this.#closed) return;
    for (const resolved of this.#targets.values()) {
      if (!resolved.addresses.some((a) => serverName(a) === server)) continue;
      if (resolved.resolving !== undefined) continue;
      const at = Math.max(
        performance.now(),
        resolved.startedAt + MIN_REFRESH_MS,
      );
      if (at < resolved.dueAt) this.#schedule(resolved, at);
    }
  }

  /** Stops refreshing; resolves once no resolution is under way. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    for (const resolved of this.#targets.values()) {
      clearTimeout(resolved.timer);
      resolved.timer = undefined;
    }
    await Promise.all(this.#resolving);
  }

  #schedule(resolved: Resolved, at: number): void {
    clearTimeout(resolved.timer);
    resolved.dueAt = at;
    resolved.timer = setTimeout(
      () => this.#refresh(resolved),
      Math.max(0, at - performance.now()),
    );
  }

  #refresh(resolved: Resolved): void {
    resolved.timer = undefined;
    resolved.dueAt = Infinity;
    if (this.#closed || this.#targets.get(resolved.target.text) !== resolved) {
      return;
    }
    resolved.startedAt = performance.now();
    const current = () =>
      !this.#closed && this.#targets.get(resolved.target.text) === resolved;
    const resolving = this.#resolve(resolved.target, this.#abort.signal).then(
      (answer) => {
        resolved.failures = 0;
        if (!current()) return;
        const fresh = answer.addresses.map((host) => ({
          host,
          port: resolved.target.port,
        }));
        // Kept in the order first seen, so an answer in another order
        // changes nothing; new ones join in an order of this client's own.
        const known = new Set(fresh.map(serverName));
        const kept = resolved.addresses.filter((a) => known.has(serverName(a)));
        const keptNames = new Set(kept.map(serverName));
        resolved.addresses = [
          ...kept,
          ...this.#shuffled(fresh.filter((a) => !keptNames.has(serverName(a)))),
        ];
        const ttl = answer.ttlMs ?? MAX_REFRESH_MS;
        const wait = Math.min(Math.max(ttl, MIN_REFRESH_MS), MAX_REFRESH_MS);
        this.#schedule(resolved, resolved.startedAt + wait);
        this.#update();
      },
      (error) => {
        if (!current()) return;
        if (resolved.failures++ === 0) {
          this.#hooks.exception(
            new ResolveError(
              resolved.target.text,
              errorCode(error),
              resolved.addresses.length,
              { cause: error },
            ),
            undefined,
          );
        }
        const wait = Math.min(
          MIN_REFRESH_MS * 2 ** (resolved.failures - 1),
          MAX_REFRESH_MS,
        );
        this.#schedule(resolved, resolved.startedAt + wait);
      },
    ).finally(() => {
      resolved.resolving = undefined;
      this.#resolving.delete(resolving);
    });
    resolved.resolving = resolving;
    this.#resolving.add(resolving);
  }

  /** Recomputes the set and says what joined and what left. */
  #update(): void {
    const next = new Map<string, ServerAddress>();
    for (const address of this.#statics) next.set(serverName(address), address);
    for (const resolved of this.#targets.values()) {
      for (const address of resolved.addresses) {
        next.set(serverName(address), address);
      }
    }
    const removed = Array.from(this.#current.keys()).filter((name) =>
      !next.has(name)
    );
    const added: ServerAddress[] = [];
    const current = new Map<string, ServerAddress>();
    for (const [name, address] of this.#current) {
      if (next.has(name)) current.set(name, address);
    }
    for (const [name, address] of next) {
      if (!current.has(name)) {
        current.set(name, address);
        added.push(address);
      }
    }
    this.#current = current;
    if (added.length > 0 || removed.length > 0) {
      this.#hooks.changed(added, removed);
    }
  }

  #shuffled(addresses: ServerAddress[]): ServerAddress[] {
    if (!this.#shuffle) return addresses;
    const out = addresses.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}
