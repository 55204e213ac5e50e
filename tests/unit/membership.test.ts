// The client's server set without sockets: DNS targets read and refused,
// answers followed in the order first seen, TTLs honoured within 1-30 s, a
// failed resolution kept quiet after its first report, and a lost
// connection asking its target again soon. A fake resolver stands in for
// DNS (tests/dns_fleet.test.ts has the real one).

import assert from "node:assert/strict";
import { test } from "../_harness.ts";
import { Client, ResolveError } from "../../mod.ts";
import {
  Membership,
  MIN_REFRESH_MS,
  parseServers,
} from "../../client/_membership.ts";
import type { Answer, DnsTarget } from "../../client/_dns.ts";
import type { ServerAddress } from "../../client/_pool.ts";
import { until } from "../_helpers.ts";

test("servers: DNS targets are read in gRPC's syntax; malformed ones are refused naming the entry", () => {
  const entries = parseServers([
    "dns:///api.internal:8212",
    "dns://127.0.0.77:5399/svc.test:7000",
    "dns://[::1]/svc.test:7000",
    "10.0.0.1:80",
  ]);
  assert.deepEqual(entries[0].dns, {
    text: "dns:///api.internal:8212",
    nameServer: undefined,
    name: "api.internal",
    port: 8212,
  });
  assert.equal(entries[1].dns?.nameServer, "127.0.0.77:5399");
  assert.equal(entries[2].dns?.nameServer, "[::1]:53");
  assert.deepEqual(entries[3].address, { host: "10.0.0.1", port: 80 });
  for (
    const bad of [
      "dns:///api.internal",
      "dns://api.internal:8212",
      "dns:///:8212",
      "dns:///api.internal:99999",
      "dns://127.0.0.77:x/svc:1",
    ]
  ) {
    assert.throws(
      () => parseServers(["10.0.0.1:80", bad]),
      (error: Error) =>
        (error instanceof TypeError || error instanceof RangeError) &&
        error.message.includes("servers[1]"),
      bad,
    );
  }
  // setServers is checked the same way, and an invalid list changes nothing.
  const client = new Client({ servers: ["127.0.0.1:9"], reconnect: false });
  try {
    assert.throws(() => client.setServers([]), TypeError);
    assert.throws(() => client.setServers(["dns:///nope"]), TypeError);
    assert.deepEqual(client.servers, ["127.0.0.1:9"]);
  } finally {
    client.close();
  }
});

/** A resolver whose answers the test sets, counting the questions. */
function fakeDns(answer: () => Answer | Error) {
  const asked: number[] = [];
  const resolve = (_target: DnsTarget): Promise<Answer> => {
    asked.push(performance.now());
    const next = answer();
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  };
  return { asked, resolve };
}

function watch() {
  const changes: Array<{ added: string[]; removed: string[] }> = [];
  const errors: unknown[] = [];
  return {
    changes,
    errors,
    hooks: {
      changed(added: ServerAddress[], removed: string[]) {
        changes.push({
          added: added.map((a) => `${a.host}:${a.port}`),
          removed,
        });
      },
      exception(error: unknown) {
        errors.push(error);
      },
    },
  };
}

test("membership: an answer's addresses join and leave the set; order stays as first seen; the TTL (at least 1 s) sets the next question", async () => {
  let addresses = ["10.0.0.1", "10.0.0.2"];
  const dns = fakeDns(() => ({ addresses, ttlMs: 0 }));
  const seen = watch();
  const members = new Membership(false, seen.hooks, dns.resolve);
  try {
    members.set(parseServers(["dns:///svc:80", "10.0.0.9:80"]));
    // The static address at once, the DNS answer a moment later.
    assert.deepEqual(seen.changes[0], { added: ["10.0.0.9:80"], removed: [] });
    await until(() => seen.changes.length === 2, 5000, "the first answer");
    assert.deepEqual(seen.changes[1].added, ["10.0.0.1:80", "10.0.0.2:80"]);
    addresses = ["10.0.0.3", "10.0.0.2"];
    await until(() => seen.changes.length === 3, 3000, "the second answer");
    assert.deepEqual(seen.changes[2], {
      added: ["10.0.0.3:80"],
      removed: ["10.0.0.1:80"],
    });
    assert.deepEqual(members.servers, [
      "10.0.0.9:80",
      "10.0.0.2:80",
      "10.0.0.3:80",
    ]);
    // A TTL of 0 is asked again no sooner than a second later.
    const gap = dns.asked[1] - dns.asked[0];
    assert.ok(gap >= MIN_REFRESH_MS - 20, `asked again after ${gap} ms`);
  } finally {
    await members.close();
  }
  const asked = dns.asked.length;
  await new Promise((resolve) => setTimeout(resolve, MIN_REFRESH_MS + 200));
  assert.equal(dns.asked.length, asked, "no question after close()");
});

test("membership: a failed resolution keeps the last answer and is reported once, until an answer comes", async () => {
  let failing = false;
  const dns = fakeDns(() =>
    failing
      ? Object.assign(new Error("no such name"), { code: "ENOTFOUND" })
      : { addresses: ["10.0.0.1"], ttlMs: 1000 }
  );
  const seen = watch();
  const members = new Membership(false, seen.hooks, dns.resolve);
  try {
    members.set(parseServers(["dns:///svc:80"]));
    await until(() => seen.changes.length === 1, 5000, "the first answer");
    failing = true;
    // 1 s (the TTL), then retries at 1 s and 2 s after each failure.
    await until(() => dns.asked.length >= 4, 6000, "three failed questions");
    assert.equal(seen.errors.length, 1);
    const error = seen.errors[0] as ResolveError;
    assert.ok(error instanceof ResolveError);
    assert.equal(error.code, "ENOTFOUND");
    assert.equal(error.kept, 1);
    assert.deepEqual(members.servers, ["10.0.0.1:80"]);
    assert.equal(seen.changes.length, 1, "the set did not change");
  } finally {
    await members.close();
  }
});

test("membership: a lost connection to a target's address asks again within about a second, not at the TTL", async () => {
  const dns = fakeDns(() => ({ addresses: ["10.0.0.1"], ttlMs: 30_000 }));
  const seen = watch();
  const members = new Membership(false, seen.hooks, dns.resolve);
  try {
    members.set(parseServers(["dns:///svc:80"]));
    await until(() => seen.changes.length === 1, 5000, "the first answer");
    const lostAt = performance.now();
    members.lost("10.0.0.2:80"); // not its address: nothing
    members.lost("10.0.0.1:80");
    members.lost("10.0.0.1:80"); // twice: still one question
    await until(() => dns.asked.length === 2, 3000, "a second question");
    const after = dns.asked[1] - lostAt;
    assert.ok(after <= MIN_REFRESH_MS + 200, `asked after ${after} ms`);
    assert.ok(dns.asked[1] - dns.asked[0] >= MIN_REFRESH_MS - 20);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(dns.asked.length, 2);
  } finally {
    await members.close();
  }
});
