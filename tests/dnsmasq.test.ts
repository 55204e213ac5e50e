// The DNS test harness (tests/_dnsmasq.ts) against node:dns: a Resolver
// pointed at dnsmasq reads its A and AAAA records with TTL 1, the errors
// each runtime gives for a missing name and a missing record type (which
// client/_dns.ts relies on), and the new records once set() resolved. Skipped,
// saying so, where dnsmasq is not installed (.ci/run installs it) or, under
// Deno, without --allow-sys=networkInterfaces.

import assert from "node:assert/strict";
import { promises as dns } from "node:dns";
import { runtime, test } from "./_harness.ts";
import { dnsmasqProblem, startDns } from "./_dnsmasq.ts";

/**
 * Why node:dns's Resolver cannot be pointed at a server here, if it cannot:
 * under Deno, setServers() needs --allow-sys=networkInterfaces.
 */
function setServersProblem(): string | undefined {
  if (!("Deno" in globalThis)) return undefined;
  const { state } = Deno.permissions.querySync({
    name: "sys",
    kind: "networkInterfaces",
  });
  return state === "granted" ? undefined : "Resolver.setServers() needs " +
    "--allow-sys=networkInterfaces under Deno";
}

function resolver(server: string): dns.Resolver {
  const resolver = new dns.Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([server]);
  return resolver;
}

function byAddress<T extends { address: string }>(records: T[]): T[] {
  return [...records].sort((a, b) => a.address < b.address ? -1 : 1);
}

/** The code a rejected promise carries. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as { code?: unknown })?.code);
  }
  assert.fail("expected a rejection");
}

// Without dnsmasq nothing can run; without setServers() (Deno run without
// CI's flags) the Resolver cannot be pointed at it.
const skip = await dnsmasqProblem() ?? setServersProblem();

test(
  "dnsmasq: a Resolver reads the records with TTL 1, and the new ones once set() resolved",
  async () => {
    const server = await startDns({
      "svc.test": ["127.0.0.11", "127.0.0.12", "fd00::11"],
      "v4only.test": ["127.0.0.13"],
    });
    assert(typeof server !== "string", String(server));
    try {
      assert.match(server.server, /^127\.0\.0\.77:\d+$/);
      assert.equal(server.server, `${server.host}:${server.port}`);
      // The harness's own view, which every permission set allows.
      assert.deepEqual((await server.query("svc.test", "A")).sort(), [
        "127.0.0.11",
        "127.0.0.12",
      ]);
      assert.deepEqual(await server.query("v4only.test", "AAAA"), []);
      assert.deepEqual(await server.query("nx.test", "A"), []);

      const before = resolver(server.server);
      assert.deepEqual(
        byAddress(await before.resolve4("svc.test", { ttl: true })),
        [{ address: "127.0.0.11", ttl: 1 }, { address: "127.0.0.12", ttl: 1 }],
      );
      assert.deepEqual(await before.resolve6("svc.test", { ttl: true }), [
        { address: "fd00::11", ttl: 1 },
      ]);
      // NXDOMAIN is ENOTFOUND everywhere; NODATA (a name with no record of
      // the type asked) is ENODATA on Node.js only, ENOTFOUND on Deno, Bun.
      assert.equal(await codeOf(before.resolve4("nx.test")), "ENOTFOUND");
      assert.equal(await codeOf(before.resolve6("nx.test")), "ENOTFOUND");
      assert.equal(
        await codeOf(before.resolve6("v4only.test")),
        runtime === "node" ? "ENODATA" : "ENOTFOUND",
      );

      await server.set({ "svc.test": ["127.0.0.14", "fd00::14", "fd00::15"] });
      assert.deepEqual(await server.query("svc.test", "A"), ["127.0.0.14"]);
      assert.deepEqual(await server.query("v4only.test", "A"), []);
      // A new Resolver: Bun's keeps an answer for its TTL (up to 1 s here).
      const after = resolver(server.server);
      assert.deepEqual(await after.resolve4("svc.test", { ttl: true }), [
        { address: "127.0.0.14", ttl: 1 },
      ]);
      assert.deepEqual(
        byAddress(await after.resolve6("svc.test", { ttl: true })),
        [{ address: "fd00::14", ttl: 1 }, { address: "fd00::15", ttl: 1 }],
      );
      assert.equal(await codeOf(after.resolve4("v4only.test")), "ENOTFOUND");
    } finally {
      await server.stop();
    }
    await server.stop(); // idempotent
    await assert.rejects(server.set({}), /after stop/);
  },
  { skip },
);
