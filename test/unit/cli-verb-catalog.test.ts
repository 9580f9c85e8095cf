/**
 * Lazy verb modules (src/cli/verbs/index.ts): the generated catalog matches what the verb
 * modules register, a program with stand-ins prints the same help as one with every module
 * loaded, and the verb a command line runs is found past global options, aliases and `help`.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { VERB_CATALOG } from '../../src/cli/verbs/catalog.js';
import { registerVerbs, verbCatalog, verbInArgs } from '../../src/cli/verbs/index.js';

async function program(verb: string | 'all' | undefined): Promise<Command> {
  const p = new Command('layerfs').option('--root <dir>', 'store root');
  await registerVerbs(p, verb);
  return p;
}

describe('lazy verb modules', () => {
  it('catalog.ts is what the verb modules register (else: npm run build && node scripts/gen-verb-catalog.mjs && npm run build)', async () => {
    expect(JSON.parse(JSON.stringify(await verbCatalog()))).toEqual(VERB_CATALOG);
  });

  it('the help of a program of stand-ins is the help of the full program', async () => {
    const full = (await program('all')).helpInformation();
    expect(full).toMatch(/^ {2}build \[options\] <context> /m);
    expect((await program(undefined)).helpInformation()).toBe(full);
    expect((await program('images')).helpInformation()).toBe(full);
  });

  it('only the verb that runs is registered for real, with its options and sub-commands', async () => {
    const p = await program('system');
    const sub = (name: string): Command => p.commands.find((c) => c.name() === name)!;
    expect(sub('system').commands.map((c) => c.name())).toEqual(['df']);
    expect(sub('builder').commands).toEqual([]);
    expect(sub('images').options).toEqual([]);
    expect((await program('images')).commands.find((c) => c.name() === 'images')!.options.length).toBeGreaterThan(3);
  });

  it('finds the verb past --root, flags, aliases and help', () => {
    expect(verbInArgs(['--root', 'images', 'ps', '-a'])).toBe('ps');
    expect(verbInArgs(['--root=/x', 'images'])).toBe('images');
    expect(verbInArgs(['unmount', '/mnt'])).toBe('umount');
    expect(verbInArgs(['help', 'build'])).toBe('build');
    expect(verbInArgs(['system', 'df'])).toBe('system');
    expect(verbInArgs(['-v'])).toBeUndefined();
    expect(verbInArgs(['nosuch', 'images'])).toBeUndefined();
  });
});
