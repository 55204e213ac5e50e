// One `test(name, fn)` for every runtime. Deno's leak sanitizers only apply to
// Deno.test, so under Deno each test is registered there with them on; Bun
// runs bun:test and Node.js runs node:test. Every test is also bounded in time.
//
// A test that cannot run here (a tool missing, a runtime without a feature) is
// registered as skipped, decided before registration (top-level await is fine
// for probes), so that every runner counts it as a skip, not a pass:
//
//   const haproxy = await findHaproxy();
//   test("haproxy: …", async () => { … }, {
//     skip: haproxy ? undefined : "haproxy is not installed",
//   });

type TestBody = () => void | Promise<void>;
type Register = (name: string, fn: TestBody) => void;
type RegisterSkipped = (name: string, fn: TestBody, reason: string) => void;

/** Options of {@linkcode test}. */
export interface TestOptions {
  /**
   * Why the test cannot run here; the runner then reports it as skipped
   * (Deno: ignored) and the reason is printed once. Undefined runs it.
   */
  skip?: string;
}

/** Longest any one test may run before it fails (ms). */
export const TEST_TIME_LIMIT = 20_000;

// A variable specifier keeps `deno check` from resolving runtime-only modules.
const bunTestModule = "bun:test";
const nodeTestModule = "node:test";

const [register, registerSkipped]: [Register, RegisterSkipped] = await (
  async () => {
    if ("Deno" in globalThis) {
      return [
        (name: string, fn: TestBody) =>
          Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true }),
        (name: string, fn: TestBody) => Deno.test({ name, fn, ignore: true }),
      ];
    }
    if ("Bun" in globalThis) {
      const bun = await import(bunTestModule);
      return [
        (name: string, fn: TestBody) =>
          bun.test(name, fn, TEST_TIME_LIMIT + 5_000),
        (name: string, fn: TestBody) => bun.test.skip(name, fn),
      ];
    }
    const node = await import(nodeTestModule);
    return [
      (name: string, fn: TestBody) =>
        node.test(name, { timeout: TEST_TIME_LIMIT + 5_000 }, fn),
      (name: string, fn: TestBody, reason: string) =>
        node.test(name, { skip: reason }, fn),
    ];
  }
)();

/** The reasons already printed: each is said once per test file. */
const said = new Set<string>();

/**
 * Registers a test that must settle within {@linkcode TEST_TIME_LIMIT}, or,
 * with `options.skip`, one that every runner reports as skipped.
 */
export function test(
  name: string,
  fn: TestBody,
  options: TestOptions = {},
): void {
  const reason = options.skip;
  if (reason !== undefined) {
    if (!said.has(reason)) {
      said.add(reason);
      console.log(`Skipped on ${runtime}: ${reason} ("${name}")`);
    }
    registerSkipped(name, fn, reason);
    return;
  }
  register(name, async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`Test "${name}" ran past ${TEST_TIME_LIMIT} ms`)),
        TEST_TIME_LIMIT,
      );
    });
    try {
      await Promise.race([fn(), limit]);
    } finally {
      clearTimeout(timer);
    }
  });
}

/** The runtime this suite runs on, for test names and skips. */
export const runtime: "deno" | "bun" | "node" = "Deno" in globalThis
  ? "deno"
  : "Bun" in globalThis
  ? "bun"
  : "node";
