// A typed EventTarget with Node-style positional listeners beside it: the base
// of Server and Client, public (exported from the package root, `mod.ts`) so
// that code can name its listener types.
//
// Listeners added with on/once are kept here and called directly with the
// event's arguments; `addEventListener` listeners get a CustomEvent whose
// detail names those arguments. No CustomEvent is built unless someone listens
// that way, because `data` fires once per frame. A listener that throws (or
// whose promise rejects) is reported through `exception`, never to the
// runtime, which would end the process.

/**
 * A listener called with an event's positional arguments. It may declare
 * more parameters than the event has (they are `undefined`), so a promise's
 * `resolve` can listen: `new Promise((resolve) => client.once("connected",
 * resolve))`.
 *
 * @example
 * ```ts
 * import type { Listener, Message, ServerSocket } from "@qtk/tcp-framework";
 * const echo: Listener<[ServerSocket, Message]> = (socket, message) => socket.send(message);
 * const settle: Listener<[]> = (_value?: unknown) => {};
 * ```
 */
// deno-lint-ignore no-explicit-any
export type Listener<Args extends any[]> = (
  ...args: [...Args, ...unknown[]]
) => unknown;

import { UnheardErrors } from "./_unheard.ts";

/** Key of the internal emit method, so it stays off the public surface. */
export const emit: unique symbol = Symbol("emit");

interface Entry {
  fn: (...args: never[]) => unknown;
  once: boolean;
}

/**
 * How a {@linkcode TypedEventTarget} subclass shapes its events.
 *
 * @example
 * ```ts
 * import type { EventShape } from "@qtk/tcp-framework";
 * const shape: EventShape<{ tick: [count: number] }> = {
 *   detail: (_type, args) => ({ count: args[0] }),
 *   listenerFailed: (_type, _args, error) => console.error(error),
 * };
 * ```
 */
export interface EventShape<Args> {
  /** The CustomEvent detail for an event's arguments. */
  detail(type: keyof Args & string, args: unknown[]): unknown;
  /** A listener of `type` failed with `error`; `args` were its arguments. */
  listenerFailed(
    type: keyof Args & string,
    args: unknown[],
    error: unknown,
  ): void;
}

/**
 * A listener for `addEventListener`, typed by the event's detail.
 *
 * @example
 * ```ts
 * import type { DetailListener } from "@qtk/tcp-framework";
 * const log: DetailListener<{ error: unknown }> = (event) => console.error(event.detail.error);
 * ```
 */
export type DetailListener<Detail> =
  | ((event: CustomEvent<Detail>) => unknown)
  | { handleEvent(event: CustomEvent<Detail>): unknown };

/**
 * An `EventTarget` whose events are typed: `addEventListener` listeners get a
 * `CustomEvent` whose `detail` names the event's values, and `on`/`once`/`off`
 * listeners get the same values as positional arguments, as with the Node.js
 * package's `EventEmitter`. {@linkcode Server} and {@linkcode Client} extend it.
 *
 * @example
 * ```ts
 * import { Server } from "@qtk/tcp-framework";
 * const server = new Server({ port: 0 });
 * server.on("connected", (socket) => console.log(socket.remoteAddr));
 * server.addEventListener("connected", (event) => console.log(event.detail.socket));
 * ```
 */
export class TypedEventTarget<
  // deno-lint-ignore no-explicit-any
  Args extends { [K in keyof Args]: any[] },
  Details extends Record<keyof Args, unknown>,
> extends EventTarget {
  readonly #shape: EventShape<Args>;
  readonly #positional = new Map<string, Entry[]>();
  /** Upper bound on addEventListener listeners per type (once ones may be gone). */
  readonly #targetListeners = new Map<string, number>();
  readonly #wrappers = new WeakMap<object, Map<string, EventListener>>();
  /** Whether `addEventListener` was ever called (then `#targetListeners` counts). */
  #anyTargetListener = false;
  /** Prints `exception`s that no listener hears, within a rate limit. */
  readonly #unheard = new UnheardErrors(() => this.constructor.name);
  #exceptionListenerThrew = false;
  /** Arguments of the event being dispatched, for reporting listener errors. */
  #dispatching: unknown[] | undefined;

  /**
   * Creates the target.
   *
   * @param shape How event arguments become details, and where listener
   *   failures go.
   */
  constructor(shape: EventShape<Args>) {
    super();
    this.#shape = shape;
  }

  // The standard listener and option types are taken from whichever
  // EventTarget the program declares (the DOM library's, or @types/node's),
  // so these declarations compile for a Node.js user without the DOM library.

  /**
   * Adds a listener that receives a `CustomEvent` whose `detail` holds the
   * event's values. A listener that throws is reported as `exception`.
   */
  override addEventListener<K extends keyof Details & string>(
    type: K,
    listener: DetailListener<Details[K]> | null,
    options?: Parameters<EventTarget["addEventListener"]>[2],
  ): void;
  /** Adds a listener for an event of any name, as on any `EventTarget`. */
  override addEventListener(
    type: string,
    listener: Parameters<EventTarget["addEventListener"]>[1],
    options?: Parameters<EventTarget["addEventListener"]>[2],
  ): void;
  override addEventListener(
    type: string,
    listener: Parameters<EventTarget["addEventListener"]>[1],
    options?: Parameters<EventTarget["addEventListener"]>[2],
  ): void {
    if (!listener) return;
    let byType = this.#wrappers.get(listener);
    if (!byType) this.#wrappers.set(listener, byType = new Map());
    let wrapper = byType.get(type);
    if (!wrapper) {
      const call = typeof listener === "function"
        ? listener
        : (event: Event) => listener.handleEvent(event);
      wrapper = (event: Event) => {
        this.#call(type, this.#dispatching ?? [], call as Entry["fn"], [event]);
      };
      byType.set(type, wrapper);
    }
    this.#targetListeners.set(type, (this.#targetListeners.get(type) ?? 0) + 1);
    this.#anyTargetListener = true;
    super.addEventListener(type, wrapper, options);
  }

  /** Removes a listener added with `addEventListener`. */
  override removeEventListener<K extends keyof Details & string>(
    type: K,
    listener: DetailListener<Details[K]> | null,
    options?: Parameters<EventTarget["removeEventListener"]>[2],
  ): void;
  /** Removes a listener for an event of any name. */
  override removeEventListener(
    type: string,
    listener: Parameters<EventTarget["addEventListener"]>[1],
    options?: Parameters<EventTarget["removeEventListener"]>[2],
  ): void;
  override removeEventListener(
    type: string,
    listener: Parameters<EventTarget["addEventListener"]>[1],
    options?: Parameters<EventTarget["removeEventListener"]>[2],
  ): void {
    const wrapper = listener && this.#wrappers.get(listener)?.get(type);
    if (wrapper) super.removeEventListener(type, wrapper, options);
  }

  /**
   * Adds a listener called with the event's positional arguments.
   *
   * @param type The event name.
   * @param listener Called with the event's arguments.
   * @returns This target, for chaining.
   */
  on<K extends keyof Args & string>(
    type: K,
    listener: Listener<Args[K]>,
  ): this {
    return this.#add(type, listener, false);
  }

  /**
   * Like {@linkcode on}, but the listener is removed after its first call.
   *
   * @param type The event name.
   * @param listener Called once with the event's arguments.
   * @returns This target, for chaining.
   */
  once<K extends keyof Args & string>(
    type: K,
    listener: Listener<Args[K]>,
  ): this {
    return this.#add(type, listener, true);
  }

  /**
   * Removes a listener added with {@linkcode on} or {@linkcode once}.
   *
   * @param type The event name.
   * @param listener The listener to remove.
   * @returns This target, for chaining.
   */
  off<K extends keyof Args & string>(
    type: K,
    listener: Listener<Args[K]>,
  ): this {
    const entry = this.#positional.get(type)?.find((entry) =>
      entry.fn === listener
    );
    if (entry !== undefined) this.#remove(type, entry);
    return this;
  }

  #remove(type: string, entry: Entry): void {
    const entries = this.#positional.get(type);
    const index = entries?.indexOf(entry) ?? -1;
    if (index >= 0) {
      // Copy on write: an emit in progress keeps iterating its own snapshot.
      const next = entries!.slice();
      next.splice(index, 1);
      this.#positional.set(type, next);
    }
  }

  /**
   * Calls the listeners of `type` with `args`. Internal: keyed by a symbol
   * that is not exported from the package.
   *
   * @param type The event name.
   * @param args The event's positional arguments.
   */
  [emit]<K extends keyof Args & string>(type: K, ...args: Args[K]): void {
    const entries = this.#positional.get(type);
    if (type === "exception" && !this.#listened(type, entries)) {
      const detail = this.#shape.detail(type, args) as { error?: unknown };
      this.#unheard.report(detail?.error);
      return;
    }
    if (entries !== undefined) {
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i];
        // This entry, not the first with its function (an `on` of it too).
        if (entry.once) this.#remove(type, entry);
        this.#call(type, args, entry.fn, args);
      }
    }
    // Most targets have no addEventListener listener at all: skip the lookup.
    if (this.#anyTargetListener && this.#targetListeners.get(type)) {
      const outer = this.#dispatching;
      this.#dispatching = args;
      try {
        this.dispatchEvent(
          new CustomEvent(type, { detail: this.#shape.detail(type, args) }),
        );
      } finally {
        this.#dispatching = outer;
      }
    }
  }

  #listened(type: string, entries: Entry[] | undefined): boolean {
    return (entries !== undefined && entries.length > 0) ||
      (this.#anyTargetListener && (this.#targetListeners.get(type) ?? 0) > 0);
  }

  #add(type: string, listener: Entry["fn"], once: boolean): this {
    if (typeof listener !== "function") {
      throw new TypeError(
        `Invalid listener for "${type}": expected a function`,
      );
    }
    // Copy on write: an emit in progress keeps iterating its own snapshot.
    const entries = this.#positional.get(type) ?? [];
    this.#positional.set(type, [...entries, { fn: listener, once }]);
    return this;
  }

  #call(
    type: string,
    args: unknown[],
    fn: Entry["fn"],
    callArgs: unknown[],
  ): void {
    try {
      // Without a spread in the common cases (`data` fires once per frame).
      // `this` is the target, as with an EventEmitter and an EventTarget:
      // 3.x code answers with `this.send(socket, …)` from a `function`.
      const call = fn as (this: unknown, ...args: unknown[]) => unknown;
      const result = callArgs.length === 2
        ? call.call(this, callArgs[0], callArgs[1])
        : callArgs.length === 1
        ? call.call(this, callArgs[0])
        : call.apply(this, callArgs);
      if (
        result !== undefined && result !== null &&
        typeof (result as PromiseLike<unknown>).then === "function"
      ) {
        (result as PromiseLike<unknown>).then(
          undefined,
          (error) => this.#failed(type, args, error),
        );
      }
    } catch (error) {
      this.#failed(type, args, error);
    }
  }

  #failed(type: string, args: unknown[], error: unknown): void {
    if (type === "exception") {
      // Reporting it as another exception could loop; stderr is the last
      // place left that does not end the process. Once: a listener that
      // throws usually throws for every error, and errors can come per frame.
      if (!this.#exceptionListenerThrew) {
        this.#exceptionListenerThrew = true;
        console.error(
          `${this.constructor.name}: an "exception" listener threw (said once; later throws are not printed):`,
          error,
        );
      }
      return;
    }
    this.#shape.listenerFailed(type as keyof Args & string, args, error);
  }
}
