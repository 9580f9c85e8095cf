/** Bounded parallelism for layer downloads and blob uploads. */

/**
 * Runs `fn` over `items`, at most `n` at a time. After the first failure no new item
 * starts; the ones running finish, then the first failure is thrown.
 */
export async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed) throw failed.err;
}
