// The deadline heap (DeadlineTimer) and the grace period of a close, on their
// own: expiry order, early removal, re-arming, and no timer left behind.

import assert from "node:assert/strict";
import { test } from "../_harness.ts";
import { until } from "../_helpers.ts";
import { type Deadline, DeadlineTimer, gracePeriod } from "../../_deadlines.ts";

/** Deterministic, so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
}

function waiter(deadline: number, expired: Deadline[]): Deadline {
  const item: Deadline = {
    deadline,
    heapIndex: -1,
    expire: () => expired.push(item),
  };
  return item;
}

test("deadlines: waiters expire in deadline order, whatever order they came and left in", async () => {
  const next = random(7);
  for (let round = 0; round < 5; round++) {
    const timer = new DeadlineTimer();
    const expired: Deadline[] = [];
    // All already due: the first firing takes them off the heap one by one,
    // so they come out in heap order, which must be deadline order even after
    // removals from the middle.
    const now = performance.now();
    const items = Array.from(
      { length: 200 },
      () => waiter(now - 1000 + next() * 900, expired),
    );
    for (const item of items) timer.add(item);
    const removed = items.filter(() => next() < 0.3);
    for (const item of removed) {
      timer.remove(item);
      assert.equal(item.heapIndex, -1);
      timer.remove(item); // a second remove is a no-op
    }
    await until(() => expired.length === items.length - removed.length, 2000);
    const deadlines = expired.map((item) => item.deadline);
    assert.deepEqual(deadlines, [...deadlines].sort((a, b) => a - b));
    assert.ok(removed.every((item) => !expired.includes(item)));
    assert.ok(expired.every((item) => item.heapIndex === -1));
  }
});

test("deadlines: an earlier deadline added later fires first, on time; clear() expires nothing", async () => {
  const timer = new DeadlineTimer();
  const expired: Deadline[] = [];
  const start = performance.now();
  const late = waiter(start + 10_000, expired);
  const soon = waiter(start + 20, expired);
  timer.add(late);
  timer.add(soon);
  await until(() => expired.length === 1, 2000);
  assert.equal(expired[0], soon);
  assert.ok(performance.now() - start < 5000, "not held up by the later one");
  assert.ok(late.heapIndex >= 0);
  // With `late` still waiting, a timer is armed for it: clear() must cancel
  // it (the sanitizers fail the test otherwise) and expire nothing.
  timer.clear();
  assert.equal(late.heapIndex, -1);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(expired, [soon]);
});

test("deadlines: a waiter removed early never expires, and the timer is not left armed", async () => {
  const timer = new DeadlineTimer();
  const expired: Deadline[] = [];
  const first = waiter(performance.now() + 15, expired);
  const second = waiter(performance.now() + 25, expired);
  timer.add(first);
  timer.add(second);
  timer.remove(first);
  await until(() => expired.length === 1, 2000);
  assert.deepEqual(expired, [second]);
  // Nothing left: the timer fired, found the heap empty and did not re-arm.
});

test("deadlines: a grace period is over at its time, or at once when ended", async () => {
  const started = performance.now();
  const short = gracePeriod(20);
  await short.over;
  assert.ok(performance.now() - started >= 15);
  const long = gracePeriod(60_000);
  let over = false;
  long.over.then(() => over = true);
  await Promise.resolve();
  assert.equal(over, false);
  long.end(); // cancels its timer too (the sanitizers would see it)
  await long.over;
  assert.equal(over, true);
});
