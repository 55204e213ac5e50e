// The guides' code runs. Every ```ts, ```js and ```cjs block of README.md and
// docs/*.md is a whole program: it is written to a temporary folder and run
// there, as a reader would run it, by the runtime running the tests, and must
// exit by itself with code 0 (its own node:assert checks passing, nothing
// left running) within BLOCK_TIME_LIMIT. Blocks in any other language (sh,
// ini, yaml, text) are not run.
//
// - `@qtk/tcp-framework` resolves as an application's would: under Node.js to
//   the built npm package (npm/, through node_modules); under Deno (import
//   map) and Bun (tsconfig paths) to the sources, per deno.json's exports.
//   `@opentelemetry/*` resolves to the dev dependencies in tools/.
// - ```ts blocks are type-checked first: `deno check` under Deno; under
//   Node.js `tsc` as a Node.js project (strict, lib es2022, @types/node), whose
//   output runs where the block is not JavaScript already.
// - Under Deno a block runs with `-N` (--allow-net) alone, or with the flags
//   of its own `// deno run <flags> <file>` comment, so the permissions a
//   guide names are the ones tested.
// - ```cjs blocks (CommonJS, `require()` of the npm package, `Buffer`
//   payloads) are Node.js programs: they run under Node.js only.
// - A block whose info string says `sigterm` keeps running: once it printed
//   its first line it is sent SIGTERM and must then exit with code 0.
// - Where a block uses `await using` and the runtime is Node.js before 24,
//   the block must be a SyntaxError there as JavaScript (as the guide says),
//   and runs as tsc compiles it.
//
// Under Deno no permission to write is needed: as tests/_dnsmasq.ts does,
// files are made and removed by child processes (sh).

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { runtime, test } from "./_harness.ts";
import { type Child, exitWithin, runtimeExecutable, spawn } from "./_spawn.ts";

/** Longest a block may run (ms): the harness allows a test 20 s in all. */
const BLOCK_TIME_LIMIT = 15_000;

const path = (url: URL) => decodeURIComponent(url.pathname);
/** The repository, or under Node.js the npm build (npm/): README, docs/. */
const root = new URL("../", import.meta.url);
const tools = path(new URL("tools/node_modules/", root));

interface Block {
  /** "README.md", "docs/tls.md". */
  doc: string;
  /** Line of the opening fence. */
  line: number;
  lang: "ts" | "js" | "cjs";
  /** Words after the language in the info string. */
  meta: string[];
  code: string;
  /** File name in the temporary folder, without extension. */
  name: string;
}

function docs(): string[] {
  const dir = new URL("docs/", root);
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith(".md")).sort();
  } catch (error) {
    throw new Error(
      `No ${
        path(dir)
      }: under Node.js, tools/build-npm.mjs copies docs/ into npm/`,
      { cause: error },
    );
  }
  return ["README.md", ...names.map((name) => `docs/${name}`)];
}

function extract(doc: string): Block[] {
  const text = readFileSync(new URL(doc, root), "utf8");
  const found: Block[] = [];
  let open:
    | { lang: string; meta: string[]; line: number; body: string[] }
    | undefined;
  text.split("\n").forEach((line, i) => {
    if (open === undefined) {
      const fence = /^```(\S*)\s*(.*)$/.exec(line);
      if (fence && !/^[a-z]+$/.test(fence[1]) || UNRUN.has(fence?.[1] ?? "")) {
        untagged.push(`${doc}:${i + 1} \`\`\`${fence![1]}`);
      }
      if (fence) {
        open = {
          lang: fence[1],
          meta: fence[2].split(/\s+/).filter(Boolean),
          line: i + 1,
          body: [],
        };
      }
    } else if (line === "```") {
      if (open.lang === "ts" || open.lang === "js" || open.lang === "cjs") {
        found.push({
          doc,
          line: open.line,
          lang: open.lang,
          meta: open.meta,
          code: open.body.join("\n") + "\n",
          name: `${doc.replace(/\.md$/, "").replace(/\W/g, "_")}_${open.line}`,
        });
      }
      open = undefined;
    } else {
      open.body.push(line);
    }
  });
  assert.equal(open, undefined, `${doc}: a code block is not closed`);
  return found;
}

/**
 * Tags of code that would look runnable but is not run: use ts, js or cjs for
 * a program, another tag (sh, text…) for the rest.
 */
const UNRUN = new Set(["typescript", "javascript", "mjs", "mts", "tsx", "jsx"]);
/** Fences without a plain language tag, or with one of UNRUN. */
const untagged: string[] = [];
const blocks = docs().flatMap(extract);

test("docs: every code block says its language", () => {
  assert.deepEqual(untagged, []);
});

/** Runs a sh script with `args` as $1…, `input` on its stdin. */
async function sh(
  script: string,
  args: string[] = [],
  input?: string,
): Promise<string> {
  const child = await spawn("sh", [
    "-c",
    `exec 2>&1; ${script}`,
    "sh",
    ...args,
  ]);
  try {
    if (input !== undefined) await child.write(input).catch(() => {});
    await child.closeStdin();
    const code = await child.exited;
    assert.equal(code, 0, `sh ${script}: ${child.stdout()}`);
    return child.stdout();
  } finally {
    await child.kill();
  }
}

/** Runs a command to its end; its exit code and output. */
async function run(
  command: string,
  args: string[],
  limit = BLOCK_TIME_LIMIT,
  cwd = path(root),
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = await spawn(command, args, { cwd });
  try {
    await child.closeStdin();
    const code = await exitWithin(child, limit);
    if (code === undefined) {
      throw new Error(
        `${command} ${args.join(" ")} still running after ${limit} ms` +
          output(child),
      );
    }
    return { code, stdout: child.stdout(), stderr: child.stderr() };
  } finally {
    await child.kill();
  }
}

/** A child's output, for a failure's message. */
function output(child: Child): string {
  return `\nstdout:\n${child.stdout()}\nstderr:\n${child.stderr()}`;
}

/** deno.json's exports as specifier → file, for the import map and paths. */
function packageEntries(): Array<[string, string]> {
  const deno = JSON.parse(readFileSync(new URL("deno.json", root), "utf8"));
  return Object.entries(deno.exports as Record<string, string>).map((
    [subpath, file],
  ) => [
    `@qtk/tcp-framework${subpath.slice(1)}`,
    path(new URL(file, root)),
  ]);
}

const nodeMajor = runtime === "node"
  ? Number(
    (globalThis as unknown as { process: { versions: { node: string } } })
      .process.versions.node.split(".")[0],
  )
  : 0;

let dir = "";

function fileOf(block: Block): string {
  return `${dir}/${block.name}.${
    { ts: "ts", js: "mjs", cjs: "cjs" }[block.lang]
  }`;
}

test("docs: the code blocks are written out, with what they import", async () => {
  assert.ok(blocks.length > 0, "no runnable block in README.md or docs/");
  dir = (await sh("mktemp -d")).trim();
  for (const block of blocks) {
    await sh('cat > "$1"', [fileOf(block)], block.code);
  }
  if (runtime === "node") {
    // A Node.js project: the package by name, ESM, the dev dependencies.
    await sh(
      'mkdir -p "$1/node_modules/@qtk" && ln -s "$2" "$1/node_modules/@qtk/tcp-framework" && ln -s "$3/@opentelemetry" "$3/@types" "$1/node_modules/"',
      [dir, path(root).replace(/\/$/, ""), tools.replace(/\/$/, "")],
    );
    await sh('cat > "$1/package.json"', [dir], '{ "type": "module" }\n');
  } else if (runtime === "deno") {
    const deno = JSON.parse(readFileSync(new URL("deno.json", root), "utf8"));
    const imports: Record<string, string> = { ...deno.imports };
    for (const [name, file] of packageEntries()) {
      imports[name] = `file://${file}`;
    }
    await sh(
      'cat > "$1/deno.json"',
      [dir],
      JSON.stringify({ imports, lock: false }, null, 2),
    );
  } else {
    const paths: Record<string, string[]> = {};
    for (const [name, file] of packageEntries()) paths[name] = [file];
    await sh(
      'cat > "$1/tsconfig.json" && mkdir "$1/node_modules" && ln -s "$2/@opentelemetry" "$1/node_modules/"',
      [dir, tools.replace(/\/$/, "")],
      JSON.stringify({ compilerOptions: { paths } }, null, 2),
    );
  }
});

test("docs: the ts blocks type-check", async () => {
  const files = blocks.filter((b) => b.lang === "ts").map(fileOf);
  const result = runtime === "deno"
    ? await run(
      runtimeExecutable(),
      ["check", "--quiet", ...files],
      60_000,
      dir,
    )
    : await run(
      runtimeExecutable(),
      [
        `${tools}typescript/bin/tsc`,
        "--ignoreConfig",
        "--strict",
        "--target",
        "es2022",
        "--lib",
        "es2022",
        "--types",
        "node",
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--rootDir",
        ".",
        "--outDir",
        "out",
        "--pretty",
        "false",
        ...files.map((file) => file.slice(dir.length + 1)),
      ],
      60_000,
      dir,
    );
  assert.equal(result.code, 0, result.stdout + result.stderr);
}, {
  skip: runtime === "bun"
    ? "the docs' type check is done by the Deno and Node.js runs"
    : undefined,
});

for (const block of blocks) {
  test(`docs: ${block.doc}:${block.line} (${block.lang}) runs`, async () => {
    assert.notEqual(dir, "", "the blocks were not written out");
    let file = fileOf(block);
    const args: string[] = [];
    if (runtime === "deno") {
      const flags = /^\/\/ deno run ((?:-\S+ )+)\S+$/m.exec(block.code);
      args.push("run", ...(flags ? flags[1].trim().split(" ") : ["-N"]));
    } else if (runtime === "node" && block.lang === "ts") {
      // The block as JavaScript where it is (pasted into a .mjs file),
      // otherwise as tsc compiled it.
      const mjs = file.replace(/\.ts$/, ".mjs");
      await sh('cat > "$1"', [mjs], block.code);
      const check = await run(runtimeExecutable(), ["--check", mjs]);
      if (/\bawait using\b/.test(block.code) && nodeMajor < 24) {
        assert.notEqual(check.code, 0, "await using ran on Node.js < 24");
        assert.match(check.stderr, /SyntaxError/);
      }
      file = check.code === 0 ? mjs : `${dir}/out/${block.name}.js`;
    }
    const child = await spawn(runtimeExecutable(), [...args, file], {
      cwd: path(root),
    });
    const where = `${block.doc}:${block.line}`;
    try {
      await child.closeStdin();
      const started = Date.now();
      if (block.meta.includes("sigterm")) {
        await child.waitFor(() => true, BLOCK_TIME_LIMIT);
        child.signal("SIGTERM");
      }
      const code = await exitWithin(
        child,
        Math.max(0, BLOCK_TIME_LIMIT - (Date.now() - started)),
      );
      if (code === undefined) {
        throw new Error(
          `${where} still running after ${BLOCK_TIME_LIMIT} ms${output(child)}`,
        );
      }
      assert.equal(code, 0, `${where} exited with ${code}${output(child)}`);
      assert.doesNotMatch(
        child.stderr(),
        /unhandled "exception" event/,
        `${where} left an exception unheard${output(child)}`,
      );
    } finally {
      await child.kill();
    }
  }, {
    skip: block.lang === "cjs" && runtime !== "node"
      ? "CommonJS blocks are Node.js programs"
      : undefined,
  });
}

test("docs: the temporary folder is removed", async () => {
  if (dir !== "") await sh('rm -rf -- "$1"', [dir]);
  dir = "";
});
