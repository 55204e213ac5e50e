// Copies of the payloads a Client queues while disconnected. Small ones are
// packed into shared slabs, one allocation for many messages instead of one
// each, so a full queue of small messages costs little more than its bytes.

/** Slab size; payloads over a quarter of it get memory of their own. */
const SLAB_BYTES = 64 * 1024;
const OWN_MEMORY_OVER = SLAB_BYTES / 4;

export class PayloadCopies {
  #slab: Uint8Array | undefined;
  #used = 0;

  /**
   * A copy of `payload`, valid for as long as it is referenced: slabs are
   * never reused, only let go. A plain `Uint8Array` even for a Node.js
   * `Buffer`.
   */
  copy(payload: Uint8Array): Uint8Array {
    const length = payload.length;
    if (length > OWN_MEMORY_OVER) return new Uint8Array(payload);
    let slab = this.#slab;
    if (slab === undefined || this.#used + length > slab.length) {
      slab = this.#slab = new Uint8Array(SLAB_BYTES);
      this.#used = 0;
    }
    const at = this.#used;
    slab.set(payload, at);
    this.#used = at + length;
    return slab.subarray(at, at + length);
  }

  /**
   * Lets go of the current slab: the next copy starts a new one, and this one
   * is freed with the last copy in it.
   */
  release(): void {
    this.#slab = undefined;
    this.#used = 0;
  }
}
