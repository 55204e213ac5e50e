// Whether `reusePort` can work here: asked by the socket adapters before they
// listen with it, and by `serveWorkers` before it starts any worker.

/**
 * Why `reusePort` cannot be honoured on `os`, if it cannot: only Linux
 * spreads connections over the sockets sharing a port (other systems ignore
 * the option, or give every connection to one socket), and a server that
 * believes it has company while it serves alone is worse than one that fails.
 */
export function reusePortOsProblem(
  runtime: string,
  os: string | undefined,
): string | undefined {
  return os === "linux"
    ? undefined
    : `reusePort needs Linux; on ${
      os ?? "this system"
    } ${runtime} would ignore it or not spread connections over the processes`;
}

/**
 * Why Node.js `version` cannot listen with `reusePort`, if it cannot: the
 * option came in Node.js 22.12 and 23.1; older versions ignore it without a
 * word. (The OS is asked apart, with {@linkcode reusePortOsProblem}.)
 */
export function nodeReusePortProblem(version: string): string | undefined {
  const [major, minor] = version.split(".").map(Number);
  const known = major > 23 || (major === 23 && minor >= 1) ||
    (major === 22 && minor >= 12);
  return known
    ? undefined
    : `reusePort needs Node.js 22.12 or later (23.1 on the 23 line); Node.js ${version} would ignore it`;
}
