// The client's balancer without sockets: least-pending sends to the link
// with the fewest requests in flight; a link that joins beside links that
// have served a while starts with a small share (slow start) instead of
// taking every message until it has caught up; round robin takes turns.

import assert from "node:assert/strict";
import { test } from "../_harness.ts";
import { Balancer, SLOW_START_MS } from "../../client/_balancer.ts";

interface FakeLink {
  name: string;
  conn: { inFlight: number; framed: { closed: boolean } };
  warmUntil: number;
  readyAt: number;
}

function link(name: string, inFlight = 0): FakeLink {
  return {
    name,
    conn: { inFlight, framed: { closed: false } },
    warmUntil: 0,
    readyAt: 0,
  };
}

/** Picks `count` times, each pick one more request in flight on its link. */
function picks(balancer: Balancer<FakeLink>, count: number) {
  const chosen: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const target = balancer.pick(() => assert.fail("nothing is closing"))!;
    target.conn.inFlight++;
    chosen[target.name] = (chosen[target.name] ?? 0) + 1;
  }
  return chosen;
}

test("balancer: least-pending fills the link with fewest requests in flight first", () => {
  const balancer = new Balancer<FakeLink>(false);
  const now = performance.now();
  const busy = link("busy", 20);
  const fresh = link("fresh");
  // Both ready within moments of each other (a client's start): no slow start.
  balancer.add(busy, now);
  balancer.add(fresh, now);
  assert.deepEqual(picks(balancer, 20), { fresh: 20 });
  // Level now: they take turns.
  assert.deepEqual(picks(balancer, 10), { busy: 5, fresh: 5 });
});

test("balancer: a link joining beside one that has served a while gets a small share at first (slow start), all of it once warm", () => {
  const balancer = new Balancer<FakeLink>(false);
  const now = performance.now();
  const serving = link("serving", 20);
  balancer.add(serving, now - SLOW_START_MS - 1000);
  const joining = link("joining");
  balancer.add(joining);
  assert.ok(joining.warmUntil > now, "the newcomer warms up");
  const first = picks(balancer, 20);
  // Without slow start it would take all 20, as in the test above.
  assert.ok((first.joining ?? 0) <= 5, JSON.stringify(first));
  assert.ok((first.joining ?? 0) >= 1, JSON.stringify(first));
  // Once warm it is an equal: it takes what it lacks.
  joining.warmUntil = performance.now() - 1;
  const gap = serving.conn.inFlight - joining.conn.inFlight;
  assert.deepEqual(picks(balancer, gap), { joining: gap });
});

test("balancer: round robin takes turns; a closing link is dropped before the pick", () => {
  const balancer = new Balancer<FakeLink>(true);
  const links = [link("a", 9), link("b"), link("c")];
  const now = performance.now();
  for (const target of links) balancer.add(target, now);
  assert.deepEqual(picks(balancer, 9), { a: 3, b: 3, c: 3 });
  links[1].conn.framed.closed = true;
  const dropped: string[] = [];
  for (let i = 0; i < 4; i++) {
    const target = balancer.pick((gone) => {
      dropped.push(gone.name);
      balancer.remove(gone);
    });
    assert.notEqual(target?.name, "b");
  }
  assert.deepEqual(dropped, ["b"]);
  assert.equal(balancer.size, 2);
});
