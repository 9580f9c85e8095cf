/**
 * The workloads, as groups that share one fresh mount: a group's steps run in order on
 * the same mount (so a "warm" step follows its "cold" one), and a step marked `drop`
 * starts after the page, dentry and inode caches were dropped. Every command runs with
 * the mountpoint as its working directory and is a separate process from any FUSE server.
 * A step's `after` runs untimed. `out` is what the step printed; `check` turns it into a complaint when the result is
 * wrong (a union that shows the wrong tree must not win on speed).
 */

const MiB = 1 << 20;
const q = (s) => `'${s.replaceAll("'", "'\\''")}'`;

/** The workload groups for this run; `c` holds helper, lists, quick. */
export function workloadGroups(c) {
  const list = (name) => q(`${c.lists}/${name}${c.quick ? '-quick' : ''}.txt`);
  const n = (full, quick) => (c.quick ? quick : full);
  const expectLines = (expected) => (out) => (Number(out.trim()) === expected ? undefined : `printed ${out.trim()} lines, expected ${expected}`);
  const statCheck = (found, missing) => (out) => {
    const m = /found (\d+) missing (\d+) other (\d+)/.exec(out);
    return m && Number(m[1]) === found && Number(m[2]) === missing && m[3] === '0' ? undefined : `got "${out.trim()}", expected found ${found} missing ${missing}`;
  };
  const entries = c.meta.mergedEntries + 1; // find prints "." too
  const statN = n(c.meta.statHit, 10_000);
  const dd = (args) => `dd ${args} bs=1M status=none`;
  return [
    {
      name: 'lookup',
      steps: [
        { name: 'find-cold', drop: true, cmd: 'find . | wc -l', check: expectLines(entries) },
        { name: 'find-warm', cmd: 'find . | wc -l', check: expectLines(entries) },
        { name: `stat-${n('100k', '10k')}-hit`, drop: true, cmd: `${q(c.helper)} stat ${list('stat-hit')}`, check: statCheck(statN, 0) },
        { name: `stat-${n('100k', '10k')}-miss`, drop: true, cmd: `${q(c.helper)} stat ${list('stat-miss')}`, check: statCheck(0, statN) },
      ],
    },
    {
      name: 'ls-lR',
      steps: [
        { name: 'ls-lR-cold', drop: true, cmd: 'ls -lR . >/dev/null' },
        { name: 'ls-lR-warm', cmd: 'ls -lR . >/dev/null' },
      ],
    },
    {
      // Piped through cat: GNU tar skips reading file data when its archive is /dev/null.
      // The 1 GiB file is left out: the read workloads measure it, tar measures the tree.
      name: 'tar',
      steps: [
        { name: 'tar-cold', drop: true, cmd: 'tar -cf - --exclude=./bench/big.bin . | cat >/dev/null' },
        { name: 'tar-warm', cmd: 'tar -cf - --exclude=./bench/big.bin . | cat >/dev/null' },
      ],
    },
    {
      name: 'read-1g',
      big: true,
      steps: [
        { name: 'seq-read-1g-cold', drop: true, countRequests: true, cmd: dd('if=bench/big.bin of=/dev/null') },
        { name: 'seq-read-1g-warm', cmd: dd('if=bench/big.bin of=/dev/null') },
        {
          name: 'read-2-parallel-cold',
          drop: true,
          cmd: `${dd('if=bench/big.bin of=/dev/null count=512')} & ${dd('if=bench/big.bin of=/dev/null skip=512 count=512')} & wait`,
        },
      ],
    },
    {
      // One mount for every write workload (fresh upper per system per round still).
      name: 'write',
      before: 'mkdir bench/churn',
      steps: [
        { name: 'write-1g-fsync', big: true, drop: true, countRequests: true, cmd: `${dd('if=/dev/zero of=bench/write.bin count=1024 conv=fsync')} && stat -c %s bench/write.bin`, after: 'rm bench/write.bin', check: (out) => (Number(out.trim()) === 1024 * MiB ? undefined : `size ${out.trim()}`) },
        { name: `small-files-${n('10k', '1k')}`, drop: true, cmd: `${q(c.helper)} churn bench/churn ${n(10_000, 1000)}` },
        {
          name: `copy-up-${n('1000', '100')}-files`,
          drop: true,
          cmd: `${q(c.helper)} append ${list('copyup')} && tail -c1 bench/tree/d100/f0000`,
          check: (out) => (out === '+' ? undefined : `appended byte reads back as ${JSON.stringify(out)}`),
        },
        {
          name: 'copy-up-1g',
          big: true,
          drop: true,
          cmd: `${q(c.helper)} append ${q(`${c.lists}/copyup-big.txt`)} && stat -c %s bench/big.bin`,
          check: (out) => (Number(out.trim()) === 1024 * MiB + 1 ? undefined : `size ${out.trim()}`),
        },
      ],
    },
  ];
}
