/**
 * `tcp-framework`, the command-line tool: try, probe and load any
 * `@qtk/tcp-framework` server or client from a shell, under Deno or Bun.
 *
 * ```sh
 * deno run -N -R -W jsr:@qtk/tcp-framework/cli serve --port 7000   # echo server
 * deno run -N -R -W jsr:@qtk/tcp-framework/cli send --port 7000 hello
 * deno run -N -R -W jsr:@qtk/tcp-framework/cli ping --port 7000
 * deno run -N -R -W jsr:@qtk/tcp-framework/cli bench --port 7000 -c 4 -n 16 -s 64 -d 5
 * bun cli/main.ts --help
 * ```
 *
 * Subcommands: `serve` (an echo or fixed-reply server), `send` (one request,
 * the reply on stdout), `ping` (round-trip times of PINGs or requests) and
 * `bench` (a load run with a summary of messages/s, MB/s and latency
 * percentiles). Each takes `--help`. Errors are reported as one line on stderr
 * and the exit code says what kind they are: see {@linkcode ExitCode}.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { ExitCode, main } from "@qtk/tcp-framework/cli";
 * const code = await main(["--help"]);
 * assert.equal(code, ExitCode.OK);
 * ```
 *
 * @module
 */

import { CliError, ExitCode, oneLine, usage } from "./_args.ts";
import { bench } from "./bench.ts";
import { ping, send, serve } from "./commands.ts";
import { type CliIo, processIo } from "./_io.ts";

export { ExitCode };

const HELP = `Usage: tcp-framework <command> [options]

Try, probe and load @qtk/tcp-framework servers and clients.

Commands:
  serve    run an echo (or fixed-reply) server
  send     send one request and print the reply
  ping     measure round-trip times with PINGs or requests
  bench    a load run: connections x in-flight x payload size x duration

Run "tcp-framework <command> --help" for its options. Every command takes
--host (default 127.0.0.1), --port and --protocol (3, or 2 for
@qtk/tcp-framework 2.x peers).

Exit codes:
  0  success
  1  usage error (unknown command or option, invalid value)
  2  connection refused, lost or failed; the address cannot be bound; or
     serve --workers cannot run its workers, or every worker kept dying
  3  timeout: no reply (or no connection) within --timeout
  4  protocol error: the peer sent bytes that are not valid frames
  5  a local file (or stdin) could not be read or written
`;

const COMMANDS: Record<string, (argv: string[], io: CliIo) => Promise<number>> =
  { serve, send, ping, bench };

/**
 * Runs the tool with `args` (what follows the script name) and resolves with
 * the exit code. Output goes to the process' stdout and stderr; errors are
 * reported there as one line, `tcp-framework: <message>`. It does not exit
 * the process: `cli/main.ts` run as a script does that.
 *
 * @param args The command line, for example `["send", "--port", "7000", "hi"]`.
 * @returns The exit code, one of {@linkcode ExitCode}.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { ExitCode, main } from "@qtk/tcp-framework/cli";
 * assert.equal(await main(["send", "--help"]), ExitCode.OK);
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  return await run(args, await processIo());
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (command === undefined) {
      await io.stderr(HELP);
      return ExitCode.USAGE;
    }
    if (command === "--help" || command === "-h" || command === "help") {
      await io.stdout(HELP);
      return ExitCode.OK;
    }
    const handler = Object.hasOwn(COMMANDS, command)
      ? COMMANDS[command]
      : undefined;
    if (!handler) {
      throw usage(
        `unknown command "${command}" (expected serve, send, ping or bench)`,
      );
    }
    return await handler(rest, io);
  } catch (error) {
    const failure = error instanceof CliError
      ? error
      : new CliError(ExitCode.CONNECTION, oneLine(error));
    const hint = failure.code === ExitCode.USAGE
      ? `; see "tcp-framework ${
        command && Object.hasOwn(COMMANDS, command) ? command + " " : ""
      }--help"`
      : "";
    await io.stderr(`tcp-framework: ${failure.message}${hint}\n`).catch(
      () => {},
    );
    return failure.code;
  }
}

/**
 * Whether this module is the program's entry point. `import.meta.main` on
 * Deno and Bun (and Node.js from 24.2); on older Node.js, the script path.
 */
function isEntry(): boolean {
  const meta = import.meta as ImportMeta & {
    main?: boolean;
    filename?: string;
  };
  if (typeof meta.main === "boolean") return meta.main;
  const script = (globalThis as { process?: { argv?: string[] } }).process
    ?.argv?.[1];
  return script !== undefined && script === meta.filename;
}

if (isEntry()) {
  const io = await processIo();
  io.exit(await run(io.args, io));
}
