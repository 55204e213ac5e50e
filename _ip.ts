// IP addresses as text and as bytes, strictly: what the PROXY protocol's
// header carries (text in v1, bytes in v2) and what a server's `trusted` list
// names. Runtimes spell a peer's address differently (Node.js on a dual-stack
// listener says "::ffff:127.0.0.1"), so matching goes through the bytes.

/**
 * The four bytes of a dotted-quad IPv4 address, or undefined if `text` is not
 * exactly four decimal numbers 0-255 without leading zeros (a leading zero
 * could be read as octal by someone else).
 */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

/**
 * The sixteen bytes of an IPv6 address: groups of 1 to 4 hex digits, at most
 * one "::", optionally ending in a dotted quad (as `inet_ntop` writes
 * IPv4-mapped addresses); undefined for anything else, zone ids included.
 */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIPv4(part);
        if (v4 === undefined) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16));
      } else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === undefined || tail === undefined) return undefined;
  // A dotted quad may only end the address.
  if (halves.length === 2 && halves[0].includes(".")) return undefined;
  const count = head.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const all = [...head, ...new Array(8 - count).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = all[i] >> 8;
    bytes[2 * i + 1] = all[i] & 0xff;
  }
  return bytes;
}

/** Dotted-quad text of four bytes. */
export function formatIPv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/**
 * RFC 5952 text of sixteen bytes: lower case, no leading zeros, the longest
 * run of two or more zero groups (the first of equals) as "::", and an
 * IPv4-mapped address as "::ffff:a.b.c.d".
 */
export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) {
    groups.push((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  }
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(bytes.subarray(12))}`;
  }
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${
    hex(groups.slice(bestAt + bestLength))
  }`;
}

/**
 * The bytes of an address as a runtime reports it: IPv4, or IPv6 (an
 * IPv4-mapped one as its IPv4 bytes, so both spellings of a peer are equal).
 */
export function addressBytes(text: string): Uint8Array | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return v4;
  const v6 = parseIPv6(
    text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text,
  );
  if (v6 === undefined) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) &&
    v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

/** An address or network ("10.0.0.0/8", "fd00::/8") to match peers against. */
export interface Network {
  bytes: Uint8Array;
  prefix: number;
}

/** Parses "address" or "address/prefix"; undefined if it is neither. */
export function parseNetwork(text: string): Network | undefined {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const bytes = addressBytes(address);
  if (bytes === undefined) return undefined;
  const bits = bytes.length * 8;
  if (slash < 0) return { bytes, prefix: bits };
  const prefixText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
  // A mapped IPv6 network is stored as IPv4: its prefix loses the 96 bits.
  const mappedShift = bits === 32 && address.includes(":") ? 96 : 0;
  const prefix = Number(prefixText) - mappedShift;
  if (prefix < 0 || prefix > bits) return undefined;
  return { bytes, prefix };
}

/** Whether `address` (as a runtime reports it) lies in one of `networks`. */
export function inNetworks(
  address: string,
  networks: readonly Network[],
): boolean {
  const bytes = addressBytes(address);
  if (bytes === undefined) return false;
  for (const network of networks) {
    if (network.bytes.length !== bytes.length) continue;
    let bits = network.prefix;
    let i = 0;
    for (; bits >= 8; i++, bits -= 8) {
      if (bytes[i] !== network.bytes[i]) break;
    }
    if (bits >= 8) continue;
    if (bits === 0) return true;
    const mask = (0xff << (8 - bits)) & 0xff;
    if ((bytes[i] & mask) === (network.bytes[i] & mask)) return true;
  }
  return false;
}
