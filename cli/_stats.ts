// One line of a server's counters, for `serve -v` and `bench --serve`.

import type { ServerStats } from "../stats.ts";

/** `1234567` as `1.2 MB`: bytes in SI units, short. */
function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * A server's counters on one line; with the previous reading and the seconds
 * between them, the message rate since.
 */
export function statsLine(
  stats: ServerStats,
  previous?: ServerStats,
  seconds?: number,
): string {
  const rate = previous !== undefined && seconds !== undefined && seconds > 0
    ? ` (${Math.round((stats.messagesIn - previous.messagesIn) / seconds)}/s)`
    : "";
  return [
    `connections ${stats.connectionsOpen} open, ${stats.connectionsTotal} total, ${stats.connectionsRefused} refused`,
    `messages in ${stats.messagesIn}${rate} out ${stats.messagesOut}`,
    `bytes in ${bytes(stats.bytesIn)} out ${bytes(stats.bytesOut)}`,
    `pings in ${stats.pingsIn} out ${stats.pingsOut}`,
    `protocol errors ${stats.protocolErrors}`,
    `timeouts ${stats.timeouts}`,
    `quiet resets ${stats.quietResets}`,
    `buffer full ${stats.bufferFull}`,
    `buffered ${bytes(stats.bufferedBytes)}`,
  ].join("; ");
}
