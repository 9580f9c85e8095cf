/**
 * Test entry for the image verbs: a commander program with the global `--root` option and
 * the verbs of src/cli/verbs, printing errors the way the real CLI does (one line, exit 1).
 */
import { Command } from 'commander';
import { LayerfsError } from '../../src/core/errors.js';
import { register as load } from '../../src/cli/verbs/load.js';
import { register as images } from '../../src/cli/verbs/images.js';
import { register as inspect } from '../../src/cli/verbs/inspect.js';
import { register as history } from '../../src/cli/verbs/history.js';
import { register as tag } from '../../src/cli/verbs/tag.js';
import { register as rmi } from '../../src/cli/verbs/rmi.js';
import { register as prune } from '../../src/cli/verbs/prune.js';
import { register as save } from '../../src/cli/verbs/save.js';

const program = new Command('layerfs').option('--root <dir>', 'store root').exitOverride();
for (const r of [load, images, inspect, history, tag, rmi, prune, save]) r(program);
const argv = process.argv.slice(2);
try {
  await program.parseAsync(argv, { from: 'user' });
} catch (err) {
  if (err instanceof LayerfsError) {
    process.stderr.write(`layerfs: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
  } else if ((err as { code?: string }).code?.startsWith('commander.')) {
    process.exitCode = (err as { exitCode?: number }).exitCode ?? 2;
  } else {
    process.stderr.write(`layerfs: ${(err as Error).stack}\n`);
  }
  process.exitCode ||= 1;
}
