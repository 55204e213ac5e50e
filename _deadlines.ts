// Deadlines: many waiters on one timer, and the grace period of a close.
//
// Deadlines for many waiters on one timer: an indexed binary min-heap, so a
// waiter that settles early leaves in O(log n) instead of lingering until its
// deadline, and the timer is re-armed only when it fires or a new earliest
// deadline arrives.

export interface Deadline {
  /** performance.now() at which this waiter expires. */
  deadline: number;
  /** Position in the heap, -1 when not in it. */
  heapIndex: number;
  expire(): void;
}

export class DeadlineTimer {
  /** Waiters expired so far (for stats). */
  expired = 0;
  #heap: Deadline[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedFor = Infinity;

  add(item: Deadline): void {
    item.heapIndex = this.#heap.length;
    this.#heap.push(item);
    this.#up(item.heapIndex);
    if (item.deadline < this.#armedFor) this.#arm();
  }

  remove(item: Deadline): void {
    const index = item.heapIndex;
    if (index < 0) return;
    item.heapIndex = -1;
    const last = this.#heap.pop()!;
    if (last !== item) {
      this.#heap[index] = last;
      last.heapIndex = index;
      this.#down(index);
      this.#up(last.heapIndex);
    }
    // The timer may now fire early; it then finds nothing due and re-arms
    // (or, with nothing left, stays unarmed). It is not cancelled here even
    // when the heap empties: one request at a time would otherwise arm and
    // cancel a timer per request. `clear()` cancels it.
  }

  /** Cancels the timer and forgets every waiter (without expiring them). */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    for (const item of this.#heap) item.heapIndex = -1;
    this.#heap = [];
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const first = this.#heap[0];
    if (!first) {
      this.#timer = undefined;
      this.#armedFor = Infinity;
      return;
    }
    this.#armedFor = first.deadline;
    const delay = Math.max(0, first.deadline - performance.now());
    this.#timer = setTimeout(() => this.#fire(), Math.ceil(delay));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = performance.now();
    while (this.#heap.length > 0 && this.#heap[0].deadline <= now) {
      const due = this.#heap[0];
      this.remove(due);
      this.expired++;
      due.expire();
    }
    if (this.#heap.length > 0 && this.#timer === undefined) this.#arm();
  }

  #up(index: number): void {
    const heap = this.#heap;
    const item = heap[index];
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex];
      if (parent.deadline <= item.deadline) break;
      heap[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    heap[index] = item;
    item.heapIndex = index;
  }

  #down(index: number): void {
    const heap = this.#heap;
    const item = heap[index];
    const size = heap.length;
    while (true) {
      let child = 2 * index + 1;
      if (child >= size) break;
      if (child + 1 < size && heap[child + 1].deadline < heap[child].deadline) {
        child++;
      }
      if (heap[child].deadline >= item.deadline) break;
      heap[index] = heap[child];
      heap[index].heapIndex = index;
      index = child;
    }
    heap[index] = item;
    item.heapIndex = index;
  }
}

/**
 * A grace period for closing: one timer however many connections wait on it
 * (a server's stop() closes them all against the same one).
 */
export function gracePeriod(ms: number): { over: Promise<void>; end(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let resolve!: () => void;
  const over = new Promise<void>((done) => {
    resolve = done;
    timer = setTimeout(done, ms);
  });
  return {
    over,
    end() {
      clearTimeout(timer);
      resolve();
    },
  };
}
