// Refusing option keys nobody reads: a misspelled option that is silently
// ignored fails later, and far from the mistake.

import { quote } from "./_quote.ts";

/**
 * Refuses the keys of `value` that are not in `known`, naming them all, each
 * with the known key it most likely meant: an option that is ignored because
 * it is misspelled fails later and far from the mistake.
 *
 * @param what How the message calls a key: "option", "tls option", …
 * @throws {TypeError} If any key is unknown.
 */
export function checkKnownKeys(
  what: string,
  value: object,
  known: Readonly<Record<string, unknown>>,
): void {
  let unknown: string[] | undefined;
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(known, key)) (unknown ??= []).push(key);
  }
  if (unknown === undefined) return;
  const named = unknown.map((key) => {
    const near = nearestKey(key, Object.keys(known));
    return near === undefined
      ? quote(key)
      : `${quote(key)} (did you mean ${quote(near)}?)`;
  });
  throw new TypeError(
    `Unknown ${what}${unknown.length > 1 ? "s" : ""} ${
      named.join(", ")
    }: expected ${Object.keys(known).join(", ")}`,
  );
}

/**
 * The known key `key` is a likely typo of: the same letters ignoring case and
 * `-`/`_`, or at most one edit per four characters (two for "hearbeat"-like
 * slips in longer names).
 */
export function nearestKey(
  key: string,
  known: readonly string[],
): string | undefined {
  const plain = (text: string) => text.toLowerCase().replace(/[-_]/g, "");
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = plain(candidate) === plain(key)
      ? 0
      : editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(key.length / 4))
    ? best
    : undefined;
}

/** Levenshtein distance, with a swap of neighbours counted as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(
        rows[i - 1][j] + 1,
        rows[i][j - 1] + 1,
        rows[i - 1][j - 1] + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, rows[i - 2][j - 2] + 1);
      }
      rows[i].push(distance);
    }
  }
  return rows[a.length][b.length];
}
