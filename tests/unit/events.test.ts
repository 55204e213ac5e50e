// TypedEventTarget on its own: on/once/off, also from inside an emit (which,
// as with Node.js's EventEmitter, works on the listeners it started with),
// CustomEvent listeners, and listener failures.

import assert from "node:assert/strict";
import { test } from "../_harness.ts";
import { emit, TypedEventTarget } from "../../events.ts";

interface Args {
  tick: [count: number];
  other: [];
}

class Target extends TypedEventTarget<Args, { tick: number; other: null }> {
  readonly failures: Array<[string, unknown]> = [];

  constructor() {
    super({
      detail: (type, args) => type === "tick" ? args[0] : null,
      listenerFailed: (type, _args, error) => this.failures.push([type, error]),
    });
  }

  tick(count: number): void {
    this[emit]("tick", count);
  }
}

test("events: once is called once, even when it emits the same event itself", () => {
  const target = new Target();
  const calls: number[] = [];
  target.once("tick", (count) => {
    calls.push(count);
    target.tick(count + 1);
  });
  target.tick(1);
  target.tick(10);
  assert.deepEqual(calls, [1]);
});

test("events: off during an emit takes effect from the next emit", () => {
  const target = new Target();
  const calls: string[] = [];
  const second = () => calls.push("second");
  target.on("tick", () => {
    calls.push("first");
    target.off("tick", second);
  });
  target.on("tick", second);
  target.tick(1);
  assert.deepEqual(calls, ["first", "second"]);
  target.tick(2);
  assert.deepEqual(calls, ["first", "second", "first"]);
});

test("events: a listener added during an emit is first called by the next one", () => {
  const target = new Target();
  const calls: string[] = [];
  target.once("tick", () => {
    calls.push("adder");
    target.on("tick", () => calls.push("added"));
  });
  target.tick(1);
  assert.deepEqual(calls, ["adder"]);
  target.tick(2);
  assert.deepEqual(calls, ["adder", "added"]);
});

test("events: once and on with the same function: the once goes, the on stays", () => {
  const target = new Target();
  const calls: number[] = [];
  const listener = (count: number) => calls.push(count);
  target.on("tick", listener);
  target.once("tick", listener);
  target.tick(1);
  assert.deepEqual(calls, [1, 1]);
  target.tick(2);
  target.tick(3);
  assert.deepEqual(calls, [1, 1, 2, 3]);
  target.off("tick", listener);
  target.tick(4);
  assert.deepEqual(calls, [1, 1, 2, 3]);
});

test("events: a once listener removed with off before its event is never called", () => {
  const target = new Target();
  let called = 0;
  const listener = () => called++;
  target.once("tick", listener);
  target.off("tick", listener);
  target.tick(1);
  assert.equal(called, 0);
});

test("events: a listener that throws or rejects is reported, and the others still run", async () => {
  const target = new Target();
  const calls: string[] = [];
  const thrown = new Error("listener failed");
  target.on("tick", () => {
    throw thrown;
  });
  target.on("tick", () => Promise.reject(thrown));
  target.on("tick", () => calls.push("after"));
  target.tick(1);
  await Promise.resolve();
  assert.deepEqual(calls, ["after"]);
  assert.deepEqual(target.failures, [["tick", thrown], ["tick", thrown]]);
});

test("events: addEventListener gets a CustomEvent with the detail, once if asked", () => {
  const target = new Target();
  const details: number[] = [];
  target.addEventListener("tick", (event) => details.push(event.detail), {
    once: true,
  });
  const each = (event: CustomEvent<number>) => details.push(-event.detail);
  target.addEventListener("tick", each);
  target.tick(1);
  target.tick(2);
  target.removeEventListener("tick", each);
  target.tick(3);
  assert.deepEqual(details, [1, -1, -2]);
});
