/**
 * A first-come, first-served async lock. The union takes it around every change to the
 * writable layer's namespace (create, copy-up, whiteout, rename …) so that two requests
 * never interleave their multi-step changes; reads and data I/O never take it.
 */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `fn` once every earlier holder has finished; resolves with its result. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
