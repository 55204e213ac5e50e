// One `test(name, fn)` for every runtime. Deno's leak sanitizers only apply to
// Deno.test, so under Deno each test is registered there with them on; Bun
// runs bun:test and Node.js runs node:test. Every test is also bounded in time.

type TestBody = () => void | Promise<void>;
type Register = (name: string, fn: TestBody) => void;

/** Longest any one test may run before it fails (ms). */
export const TEST_TIME_LIMIT = 20_000;

// A variable specifier keeps `deno check` from resolving runtime-only modules.
const bunTestModule = "bun:test";
const nodeTestModule = "node:test";

const register: Register = await (async () => {
  if ("Deno" in globalThis) {
    return (name: string, fn: TestBody) =>
      Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
  }
  if ("Bun" in globalThis) {
    const bun = await import(bunTestModule);
    return (name: string, fn: TestBody) =>
      bun.test(name, fn, TEST_TIME_LIMIT + 5_000);
  }
  const node = await import(nodeTestModule);
  return (name: string, fn: TestBody) =>
    node.test(name, { timeout: TEST_TIME_LIMIT + 5_000 }, fn);
})();

/** Registers a test that must settle within {@linkcode TEST_TIME_LIMIT}. */
export function test(name: string, fn: TestBody): void {
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
