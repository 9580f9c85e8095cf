/**
 * Parsed Dockerfiles kept by content (src/build/dockerfile-cache.ts): a kept parse is the
 * parser's own result, an entry is never used for another text (even when an entry was
 * altered on disk), a corrupt or misshapen entry is ignored and written again, a
 * Dockerfile with an error is never kept, and the folder stays bounded.
 */
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadDockerfile, MAX_ENTRIES } from '../../src/build/dockerfile-cache.js';
import { parseDockerfile } from '../../src/build/dockerfile.js';
import { tempDir } from '../helpers/temp.js';

const RICH = [
  '# escape=`',
  'ARG BASE=debian',
  'FROM ${BASE} AS Build',
  'RUN echo a `',
  '  && echo b',
  "COPY --from=build --chown=1:2 --link a* /dst/",
  'RUN <<EOF',
  'echo in heredoc',
  'EOF',
  "COPY <<-'A' /a",
  '\tx $Y',
  '\tA',
  'FROM scratch',
  'COPY --from=build /dst /',
  'CMD ["/bin/sh"]',
  '',
].join('\n');

describe('parsed Dockerfiles kept by content', () => {
  let dir: string;
  const entries = async (): Promise<string[]> => (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  const onlyEntry = async (): Promise<string> => {
    const names = await entries();
    expect(names).toHaveLength(1);
    return join(dir, names[0]!);
  };

  beforeEach(async () => {
    dir = join(await tempDir(), 'parsed');
  });

  it('gives back what the parser gives, named as this build names it', async () => {
    const fresh = parseDockerfile(RICH, 'Dockerfile');
    expect(await loadDockerfile(dir, RICH, 'Dockerfile')).toEqual(fresh);
    const entry = await onlyEntry();
    const kept = await loadDockerfile(dir, RICH, 'other/Dockerfile.dev');
    expect(kept).toEqual({ ...fresh, file: 'other/Dockerfile.dev' });
    expect(kept.stages[0]!.instructions[1]!.flags).toEqual(new Map([['from', 'build'], ['chown', '1:2'], ['link', null]]));
    expect(kept.escape).toBe('`');
    expect(await entries()).toEqual([entry.slice(dir.length + 1)]);
  });

  it('is read on a second build, and never for a changed Dockerfile', async () => {
    await loadDockerfile(dir, RICH, 'Dockerfile');
    const entry = await onlyEntry();
    // Alter the kept parse on disk: a build of the same text reads it (the cache is used)…
    const doc = JSON.parse(await readFile(entry, 'utf8')) as { stages: Array<{ instructions: Array<{ args: string }> }> };
    doc.stages[1]!.instructions[1]!.args = '["/bin/altered"]';
    await writeFile(entry, JSON.stringify(doc));
    expect((await loadDockerfile(dir, RICH, 'Dockerfile')).stages[1]!.instructions[1]!.args).toBe('["/bin/altered"]');
    // …and any other text, one byte apart, is parsed: its own entry, its own result.
    const changed = RICH.replace('CMD ["/bin/sh"]', 'CMD ["/bin/sh" ]');
    const got = await loadDockerfile(dir, changed, 'Dockerfile');
    expect(got).toEqual(parseDockerfile(changed, 'Dockerfile'));
    expect(got.stages[1]!.instructions[1]!.args).toBe('["/bin/sh" ]');
    expect(await entries()).toHaveLength(2);
  });

  it('ignores a corrupt or misshapen entry and writes it again', async () => {
    const fresh = parseDockerfile(RICH, 'Dockerfile');
    await loadDockerfile(dir, RICH, 'Dockerfile');
    const entry = await onlyEntry();
    const good = await readFile(entry, 'utf8');
    const damaged = [
      '',
      '\0\0\0garbage',
      good.slice(0, good.length / 2),
      'null',
      '[]',
      good.replace('"format":1', '"format":99'),
      good.replace(/"key":"[0-9a-f]+"/, '"key":"0000"'),
      good.replace('"flags":[]', '"flags":{}'),
      good.replace('"line":3', '"line":-3'),
      good.replace('"expand":true', '"expand":"yes"'),
      good.replace(/"stages":\[.*\]\}$/, '"stages":[]}'),
    ];
    for (const text of damaged) {
      expect(text).not.toBe(good);
      await writeFile(entry, text);
      expect(await loadDockerfile(dir, RICH, 'Dockerfile'), text.slice(0, 40)).toEqual(fresh);
      expect(await readFile(entry, 'utf8')).toBe(good);
    }
  });

  it('never keeps a Dockerfile with an error: it fails the same way every time', async () => {
    for (let i = 0; i < 2; i++) await expect(loadDockerfile(dir, 'FROM x\n  BOGUS y\n', 'df')).rejects.toThrow('df:2:3: unknown instruction: BOGUS');
    expect(await entries()).toEqual([]);
  });

  it(`keeps at most ${MAX_ENTRIES} entries, the oldest going first`, async () => {
    await loadDockerfile(dir, 'FROM first\n', 'Dockerfile');
    const first = await onlyEntry();
    await utimes(first, new Date(2000, 0, 1), new Date(2000, 0, 1));
    for (let i = 0; i < MAX_ENTRIES; i++) await loadDockerfile(dir, `FROM image${i}\n`, 'Dockerfile');
    expect(await entries()).toHaveLength(MAX_ENTRIES);
    await expect(stat(first)).rejects.toThrow('ENOENT');
    expect((await loadDockerfile(dir, 'FROM image0\n', 'Dockerfile')).stages[0]!.from.args).toBe('image0');
  });
});
