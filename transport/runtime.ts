/**
 * The transport of the runtime this code runs on, and the only module that
 * chooses one: Deno's or Bun's own sockets, or `node:net` / `node:tls`
 * elsewhere (Node.js). Only that runtime's adapter is ever loaded, by a
 * dynamic import that starts with this module but does not hold its import
 * up, so a Deno or Bun program never loads the Node.js modules and a Node.js
 * one never loads the others.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * assert.equal(typeof runtimeTransport().connect, "function");
 * ```
 *
 * @module
 */

import type {
  Accept,
  ConnectOptions,
  ListenOptions,
  NetAddress,
  Transport,
  TransportConnection,
  TransportListener,
} from "./transport.ts";
import { networkError } from "../_network_error.ts";

// Not a literal, so that Deno's module graph does not follow it: Deno loads
// (and `deno info` lists) every module a literal `import()` names, and this
// adapter brings node:net and node:tls. The npm build compiles it to `.js`.
const NODE_ADAPTER = import.meta.url.endsWith(".ts")
  ? "./node.ts"
  : "./node.js";

async function loadAdapter(): Promise<Transport> {
  if ("Deno" in globalThis) return (await import("./deno.ts")).denoTransport;
  if ("Bun" in globalThis) return (await import("./bun.ts")).bunTransport;
  const node: { nodeTransport: Transport } = await import(NODE_ADAPTER);
  return node.nodeTransport;
}

// Started now rather than on the first listen or connect, so that neither
// waits for it (loading node:tls takes a while). A failure is reported by the
// calls that await it.
const loading: Promise<Transport> = loadAdapter();
loading.catch(() => {});

/**
 * Forwards to the adapter once it is loaded: both calls of the contract are
 * asynchronous anyway, so callers see no difference.
 */
class RuntimeTransport implements Transport {
  #adapter: Transport | undefined;

  async #load(): Promise<Transport> {
    return this.#adapter = await loading;
  }

  async listen(
    address: NetAddress,
    accept: Accept,
    options?: ListenOptions,
  ): Promise<TransportListener> {
    const adapter = this.#adapter ?? await this.#load();
    try {
      return await adapter.listen(address, accept, options);
    } catch (error) {
      throw networkError("listen", address, error);
    }
  }

  async connect(
    address: NetAddress,
    accept: Accept,
    options?: ConnectOptions,
  ): Promise<TransportConnection> {
    const adapter = this.#adapter ?? await this.#load();
    try {
      return await adapter.connect(address, accept, options);
    } catch (error) {
      throw networkError("connect", address, error);
    }
  }
}

let transport: Transport | undefined;

/**
 * The transport of the runtime this code runs on: Deno's or Bun's own
 * sockets, or `node:net` / `node:tls` elsewhere (Node.js). Its adapter is
 * loaded in the background as this module is; `listen` and `connect` wait for
 * it if they come first.
 *
 * @returns The transport (always the same object).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * assert.equal(runtimeTransport(), runtimeTransport());
 * const listener = await runtimeTransport().listen({ hostname: "127.0.0.1", port: 0 }, (connection) => ({
 *   received: (chunk) => connection.write(chunk),
 *   ended: () => {},
 * }));
 * assert.ok(listener.addr.port > 0);
 * await listener.close();
 * ```
 */
export function runtimeTransport(): Transport {
  return transport ??= new RuntimeTransport();
}
