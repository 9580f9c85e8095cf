/**
 * The Dockerfile front end of `layerfs build`: parsing (continuations, the escape
 * directive, comments inside continuations, flags, heredocs, stages, errors with line and
 * column), Docker's word rules (quotes, escapes, every `${…}` form), the metadata
 * instructions' config and CREATED BY text, ARG scoping and source globs.
 */
import { describe, expect, it } from 'vitest';
import { ArgScope, parseBuildArgs } from '../../src/build/build-args.js';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildContext, MAX_FILES_NAMED, globRegExp } from '../../src/build/build-context.js';
import { parseDockerfile } from '../../src/build/dockerfile.js';
import { applyMetadata, type RunConfig } from '../../src/build/metadata.js';
import { jsonForm, keyValuePairs, processWord, processWords } from '../../src/build/shell-words.js';

const lex = { escape: '\\' };
const vars = new Map([['A', 'one'], ['EMPTY', ''], ['SP', 'a b']]);

describe('Dockerfile parsing', () => {
  it('joins continuations, drops comment lines inside them, keeps flags apart', () => {
    const df = parseDockerfile('FROM sample AS Build\nRUN echo a \\\n# a comment\n  && echo b\nCOPY --from=build --chown=1:2 a* /dst/\n', 'Dockerfile');
    expect(df.stages).toHaveLength(1);
    expect(df.stages[0]!.name).toBe('build');
    const [run, copy] = df.stages[0]!.instructions;
    expect(run!.args).toBe('echo a   && echo b');
    expect(copy!.args).toBe('a* /dst/');
    expect([...copy!.flags]).toEqual([['from', 'build'], ['chown', '1:2']]);
    expect(copy!.line).toBe(5);
  });

  it('honours the escape directive', () => {
    const df = parseDockerfile('# escape=`\nFROM sample\nRUN dir c:\\ `\n  && echo x\n', 'Dockerfile');
    expect(df.escape).toBe('`');
    expect(df.stages[0]!.instructions[0]!.args).toBe('dir c:\\   && echo x');
  });

  it('reads heredocs with their bodies, <<- tab stripping and quoted delimiters', () => {
    const df = parseDockerfile("FROM sample\nRUN <<EOF\necho 1\n  echo 2\nEOF\nCOPY <<-'A' /a\n\tx $Y\n\tA\nRUN true\n", 'Dockerfile');
    const [run, copy, next] = df.stages[0]!.instructions;
    expect(run!.args).toBe('<<EOF');
    expect(run!.heredocs).toEqual([{ name: 'EOF', body: 'echo 1\n  echo 2\n', expand: true }]);
    expect(copy!.heredocs).toEqual([{ name: 'A', body: 'x $Y\n', expand: false }]);
    expect(next!.keyword).toBe('RUN');
  });

  it('keeps global ARGs apart from stages', () => {
    const df = parseDockerfile('ARG V=1\nFROM img:${V} AS a\nFROM a\n', 'Dockerfile');
    expect(df.globalArgs.map((i) => i.args)).toEqual(['V=1']);
    expect(df.stages.map((s) => s.name)).toEqual(['a', undefined]);
  });

  it('reports errors with file, line and column', () => {
    expect(() => parseDockerfile('FROM x\n  BOGUS y\n', 'df')).toThrow('df:2:3: unknown instruction: BOGUS');
    expect(() => parseDockerfile('RUN x\n', 'df')).toThrow('df:1:1: RUN before the first FROM');
    expect(() => parseDockerfile('# nothing\n', 'df')).toThrow('no FROM instruction');
    expect(() => parseDockerfile('FROM a AS x\nFROM b AS x\n', 'df')).toThrow('duplicate stage name');
    expect(() => parseDockerfile('FROM a\nRUN <<EOF\nnever closed\n', 'df')).toThrow('heredoc <<EOF has no closing EOF line');
  });
});

describe("Docker's word rules", () => {
  it('expands every ${…} form and $NAME', () => {
    expect(processWord('$A-${A}', vars, lex)).toBe('one-one');
    expect(processWord('${NOPE:-dflt} ${EMPTY:-e} ${EMPTY-kept}', vars, lex)).toBe('dflt e ');
    expect(processWord('${A:+alt} ${NOPE:+alt}|', vars, lex)).toBe('alt |');
    expect(() => processWord('${NOPE:?must be set}', vars, lex)).toThrow('NOPE: must be set');
    expect(processWord('cost $5 and $', vars, lex)).toBe('cost  and $');
  });

  it('removes quotes, keeps single quotes literal, and honours escapes', () => {
    expect(processWords(`'$A' "$A" \\$A "a\\"b" x\\ y`, vars, lex)).toEqual(['$A', 'one', '$A', 'a"b', 'x y']);
    expect(processWords('$SP', vars, lex)).toEqual(['a b']);
    expect(() => processWords('"open', vars, lex)).toThrow('double-quote');
  });

  it('splits KEY=VALUE pairs with quotes kept for expansion, and the legacy form', () => {
    expect(keyValuePairs('a=1 "b c"="d e" f', '\\', false)).toEqual([['a', '1'], ['"b c"', '"d e"'], ['f', undefined]]);
    expect(keyValuePairs('KEY value with spaces', '\\', true)).toEqual([['KEY', 'value with spaces']]);
  });

  it('tells the exec form from the shell form as Docker does', () => {
    expect(jsonForm('["sh", "-c", "echo $X"]')).toEqual(['sh', '-c', 'echo $X']);
    expect(jsonForm('[not json]')).toBeUndefined();
    expect(jsonForm('echo [1]')).toBeUndefined();
  });

  it('matches sources like filepath.Match: * and ? never cross /', () => {
    expect(globRegExp('*.txt').test('a.txt')).toBe(true);
    expect(globRegExp('*.txt').test('d/a.txt')).toBe(false);
    expect(globRegExp('d/?.[tx]*').test('d/a.txt')).toBe(true);
    expect(globRegExp('[!a]*').test('abc')).toBe(false);
  });
});

describe('metadata instructions', () => {
  const apply = (line: string, c: RunConfig = {}): { config: RunConfig; createdBy: string } => {
    const df = parseDockerfile(`FROM x\n${line}\n`, 'Dockerfile');
    return applyMetadata(df.stages[0]!.instructions[0]!, c, vars, lex);
  };

  it('ENV sees earlier pairs of the same line and replaces keys in place', () => {
    const r = apply('ENV B=$A C="${B} two" A=new', { Env: ['A=old', 'Z=z'] });
    expect(r.config.Env).toEqual(['A=new', 'Z=z', 'B=one', 'C=one two']);
    expect(r.createdBy).toBe('ENV B=one C=one two A=new');
  });

  it('WORKDIR resolves against the previous one; USER, LABEL, STOPSIGNAL expand', () => {
    expect(apply('WORKDIR sub/$A', { WorkingDir: '/app' }).config.WorkingDir).toBe('/app/sub/one');
    expect(apply('USER $A:grp').config.User).toBe('one:grp');
    expect(apply('LABEL "my key"=$A other=x').config.Labels).toEqual({ 'my key': 'one', other: 'x' });
    expect(() => apply('STOPSIGNAL KILL')).toThrow('invalid signal');
  });

  it('CMD and ENTRYPOINT: shell form through SHELL, ENTRYPOINT drops Cmd; history in Go %q form', () => {
    const cmd = apply('CMD echo $HOME', { Shell: ['/bin/bash', '-c'] });
    expect(cmd.config.Cmd).toEqual(['/bin/bash', '-c', 'echo $HOME']);
    expect(cmd.createdBy).toBe('CMD ["/bin/bash" "-c" "echo $HOME"]');
    const ep = apply('ENTRYPOINT ["/bin/cat"]', { Cmd: ['x'] });
    expect(ep.config).toMatchObject({ Entrypoint: ['/bin/cat'], Cmd: null });
  });

  it('EXPOSE ranges and protocols, VOLUME in both forms, HEALTHCHECK with durations', () => {
    const ex = apply('EXPOSE 80 7000-7001/udp');
    expect(ex.config.ExposedPorts).toEqual({ '80/tcp': {}, '7000/udp': {}, '7001/udp': {} });
    expect(ex.createdBy).toBe('EXPOSE map[7000/udp:{} 7001/udp:{} 80/tcp:{}]');
    expect(apply('VOLUME /a /b').config.Volumes).toEqual({ '/a': {}, '/b': {} });
    expect(apply('VOLUME ["/c"]').createdBy).toBe('VOLUME [/c]');
    const hc = apply('HEALTHCHECK --interval=1m30s --retries=3 CMD ["true"]');
    expect(hc.config.Healthcheck).toEqual({ Test: ['CMD', 'true'], Interval: 90e9, Retries: 3 });
    expect(apply('HEALTHCHECK NONE').config.Healthcheck).toEqual({ Test: ['NONE'] });
    expect(() => apply('SHELL /bin/bash -c')).toThrow('JSON form');
  });
});

describe('ARG', () => {
  it('build args beat defaults, a bare ARG takes the global value, unknown build args are not consumed', () => {
    const consumed = new Set<string>();
    const buildArgs = parseBuildArgs(['B=cli', 'HTTP_PROXY=http://p', 'UNUSED=x']);
    const globals = new Map<string, string | undefined>([['G', 'global']]);
    const scope = new ArgScope(buildArgs, globals, consumed);
    const df = parseDockerfile('FROM x\nARG A=dflt B=dflt G\n', 'Dockerfile');
    expect(scope.declare(df.stages[0]!.instructions[0]!, new Map(), lex)).toBe('ARG A=dflt B=dflt G');
    expect(Object.fromEntries(scope.defined())).toEqual({ A: 'dflt', B: 'cli', G: 'global' });
    expect([...scope.proxies()]).toEqual([['HTTP_PROXY', 'http://p']]);
    expect([...consumed].sort()).toEqual(['B', 'HTTP_PROXY']);
    expect(() => parseBuildArgs(['1BAD=x'])).toThrow('invalid --build-arg');
  });
});

describe('source digests', () => {
  it('name files, ignore mtimes, and fold a large context into folders', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'layerfs-ctx-'));
    try {
      for (let d = 0; d < 6; d++) {
        await mkdir(join(dir, 'src', `d${d}`), { recursive: true });
        for (let f = 0; f < 10; f++) await writeFile(join(dir, 'src', `d${d}`, `f${f}`), `${d}/${f}`);
      }
      await writeFile(join(dir, 'top.txt'), 'top');
      const ctx = await BuildContext.open(dir);
      // A small limit stands for MAX_FILES_NAMED, which only a very large context reaches.
      expect(MAX_FILES_NAMED).toBeGreaterThan(1000);
      const digest = async () => ctx.digestSources(await ctx.resolve(['.'], 'COPY'), 50);
      const a = await digest();
      expect(Object.keys(a.files).length).toBeLessThanOrEqual(50);
      expect(a.files['top.txt']).toBeDefined();
      await writeFile(join(dir, 'src', 'd3', 'f7'), 'changed');
      await writeFile(join(dir, 'top.txt'), 'top'); // rewritten, same content: not a change
      const b = await digest();
      expect(b.digest).not.toBe(a.digest);
      const changed = Object.keys(b.files).filter((k) => a.files[k] !== b.files[k]);
      expect(changed).toEqual(['src/d3/']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
