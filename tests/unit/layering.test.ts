// The library's layering, read from its sources (no sockets, no imports of
// the modules themselves):
// - a private module (`_name.ts`) is imported only from its own folder, a
//   folder below it, or the module its folder is named after (`client.ts`
//   for `client/`, whose parts it is), as Go's `internal/`: root code may not
//   reach into `transport/_*.ts`, while `transport/` and `client/` may use
//   the root's;
// - library modules import each other in no circle, type-only imports
//   included (a type circle still ties two modules into one);
// - the codec stands alone: nothing `codec.ts` imports, directly or not, is
//   in `transport/`.
// Tests, benchmarks and examples are not held to the first rule: they reach
// into any private module to test it.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, posix, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "../_harness.ts";

/** Folders at the root that hold no library module. */
const NOT_LIBRARY = new Set([
  "bench",
  "docs",
  "examples",
  "node_modules",
  "npm",
  "tests",
  "tools",
]);

/**
 * The repository's root: the nearest folder above this file with deno.json
 * (tests/ from the sources, npm/tests/ in the Node.js build, whose compiled
 * modules have lost their type-only imports, so the sources are read there
 * too).
 */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 8; depth++) {
    if (existsSync(join(dir, "deno.json"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("No deno.json above tests/unit/: where are the sources?");
}

/** Every library module, as a path from the root with `/` separators. */
function libraryModules(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 8) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        const top = depth === 0 && NOT_LIBRARY.has(entry.name);
        if (!top && !entry.name.startsWith(".")) walk(path, depth + 1);
      } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
        found.push(relative(root, path).split(sep).join("/"));
      }
    }
  };
  walk(root, 0);
  return found.sort();
}

/**
 * `source` with its comments blanked (newlines kept), so that the imports of
 * JSDoc examples do not count. Strings are kept whole; a regular expression
 * literal holding a quote would confuse it (the library has none).
 */
function withoutComments(source: string): string {
  let out = "";
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < source.length && source[j] !== c) {
        j += source[j] === "\\" ? 2 : 1;
      }
      out += source.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const CLAUSE = String.raw`(?:type\s+)?(?:[\w$]+\s*,?\s*)?` +
  String.raw`(?:\*(?:\s*as\s+[\w$]+)?|\{[^}]*\})?`;
const FROM = new RegExp(
  String.raw`^\s*(?:import|export)\s+${CLAUSE}\s*from\s*["']([^"']+)["']`,
  "gm",
);
const BARE = /^\s*import\s*["']([^"']+)["']/gm;
const DYNAMIC = /\bimport\s*\(\s*["'`]([^"'`$]+)["'`]\s*\)/g;

/** The specifiers `source` imports: static, type-only, bare and dynamic. */
function importSpecifiers(source: string): string[] {
  const code = withoutComments(source);
  const specifiers: string[] = [];
  for (const pattern of [FROM, BARE, DYNAMIC]) {
    for (const match of code.matchAll(pattern)) specifiers.push(match[1]);
  }
  return specifiers;
}

/** Each module's imports of other library modules, as root paths. */
function importGraph(root: string): Map<string, string[]> {
  const modules = libraryModules(root);
  const known = new Set(modules);
  const graph = new Map<string, string[]>();
  for (const module of modules) {
    const source = readFileSync(join(root, module), "utf8");
    const targets = importSpecifiers(source)
      .filter((specifier) => specifier.startsWith("."))
      .map((specifier) =>
        posix.normalize(posix.join(posix.dirname(module), specifier))
      )
      .filter((target) => known.has(target));
    graph.set(module, [...new Set(targets)]);
  }
  return graph;
}

/** Whether `importer` may import the private module `target`. */
function mayImportPrivate(importer: string, target: string): boolean {
  const home = posix.dirname(target);
  const from = posix.dirname(importer);
  return home === "." || home === from || from.startsWith(home + "/") ||
    importer === `${home}.ts`;
}

/**
 * Import circles, as `a.ts -> b.ts -> a.ts`: the one each edge back into the
 * walk's path closes, so there is at least one whenever there is any.
 */
function circles(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (module: string) => {
    path.push(module);
    onPath.add(module);
    for (const target of graph.get(module) ?? []) {
      if (onPath.has(target)) {
        found.push([...path.slice(path.indexOf(target)), target].join(" -> "));
      } else if (!done.has(target)) {
        visit(target);
      }
    }
    path.pop();
    onPath.delete(module);
    done.add(module);
  };
  for (const module of graph.keys()) if (!done.has(module)) visit(module);
  return found;
}

test("layering: the import reader sees every form, and no comment", () => {
  const source = [
    "/**",
    " * @example",
    ' * import { x } from "./_example.ts";',
    " */",
    'import { a, type B } from "./a.ts";',
    "import type {",
    "  C,",
    "  D,",
    '} from "../c.ts";',
    'import type * as E from "./_e.ts";',
    'import f, { g } from "./f.ts";',
    'export { h } from "./h.ts";',
    'export * from "./i.ts";',
    'import "./j.ts";',
    '// import { k } from "./k.ts";',
    'const l = await import("./l.ts");',
    'const text = "// not a comment";',
    'import { m } from "./m.ts";',
  ].join("\n");
  assert.deepEqual(importSpecifiers(source).sort(), [
    "../c.ts",
    "./_e.ts",
    "./a.ts",
    "./f.ts",
    "./h.ts",
    "./i.ts",
    "./j.ts",
    "./l.ts",
    "./m.ts",
  ]);
  assert.equal(mayImportPrivate("transport/deno.ts", "_bytes.ts"), true);
  assert.equal(mayImportPrivate("client/x.ts", "client/_pool.ts"), true);
  assert.equal(mayImportPrivate("client.ts", "client/_pool.ts"), true);
  assert.equal(mayImportPrivate("server.ts", "client/_pool.ts"), false);
  assert.equal(mayImportPrivate("a/b/c.ts", "a/_d.ts"), true);
  assert.equal(mayImportPrivate("codec.ts", "transport/_bytes.ts"), false);
  assert.equal(mayImportPrivate("client/x.ts", "transport/_y.ts"), false);
  assert.equal(mayImportPrivate("ab/x.ts", "a/_y.ts"), false);
  assert.deepEqual(
    circles(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", []]])),
    ["a -> b -> c -> a"],
  );
});

test("layering: a private module is used only in its folder and below", () => {
  const graph = importGraph(repositoryRoot());
  // A wrong root would find nothing and pass: the library has dozens.
  assert.ok(graph.size > 30, `only ${graph.size} library modules found`);
  const outside: string[] = [];
  for (const [module, targets] of graph) {
    for (const target of targets) {
      const name = posix.basename(target);
      if (!name.startsWith("_") || mayImportPrivate(module, target)) continue;
      outside.push(`${module} -> ${target}`);
    }
  }
  assert.deepEqual(outside, []);
});

test("layering: library modules import each other in no circle", () => {
  assert.deepEqual(circles(importGraph(repositoryRoot())), []);
});

test("layering: the codec imports nothing from transport/", () => {
  const graph = importGraph(repositoryRoot());
  assert.ok(graph.has("codec.ts"), "codec.ts not found");
  const reached = new Set(["codec.ts"]);
  for (const module of reached) {
    for (const target of graph.get(module) ?? []) reached.add(target);
  }
  assert.deepEqual([...reached].filter((m) => m.startsWith("transport/")), []);
});
