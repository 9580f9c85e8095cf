/**
 * With CI=true, a test that was skipped makes the run fail: every skip in this suite is a
 * condition of the machine (not root, no /dev/fuse, no browser, no cachestat(2)), and CI
 * is where all of them must hold, so a green CI run means every test ran. Local runs
 * (CI unset) only print the skips.
 */
import type { Reporter, TestModule } from 'vitest/node';
import { isCi } from './global-setup.js';

export default class NoSkipsReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const skipped: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests('skipped')) skipped.push(`${m.moduleId.split('/test/').at(-1)} > ${t.fullName}`);
    }
    if (skipped.length === 0) return;
    const list = skipped.map((s) => `  - ${s}`).join('\n');
    if (isCi()) {
      console.error(`\n*** CI=true and ${skipped.length} test(s) were skipped; failing the run:\n${list}\n`);
      process.exitCode = 1;
    } else {
      console.warn(`\n*** ${skipped.length} test(s) skipped on this machine (with CI=true this fails the run):\n${list}\n`);
    }
  }
}
