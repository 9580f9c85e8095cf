/**
 * Runs `visit` over a growing set of items with at most `concurrency` visits in flight:
 * a directory walk that keeps the libuv pool busy without opening thousands of
 * directories at once (EMFILE). `visit` adds more items through `push`.
 */
export function drainQueue<T>(
  start: T[],
  concurrency: number,
  visit: (item: T, push: (next: T) => void) => Promise<void>,
): Promise<void> {
  const queue = [...start];
  let running = 0;
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    const push = (next: T): void => {
      queue.push(next);
    };
    const pump = (): void => {
      if (failed) return;
      if (queue.length === 0 && running === 0) return resolve();
      while (running < concurrency && queue.length > 0) {
        const item = queue.pop()!;
        running++;
        visit(item, push).then(
          () => {
            running--;
            pump();
          },
          (err: unknown) => {
            failed = true;
            reject(err);
          },
        );
      }
    };
    pump();
  });
}
