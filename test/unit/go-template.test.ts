/**
 * The --format language (src/cli/go-template.ts): what Docker users type, with the output
 * Go's text/template gives for it, and usage errors for what it does not support.
 */
import { describe, expect, it } from 'vitest';
import { LayerfsError } from '../../src/core/errors.js';
import { compileTemplate, goString } from '../../src/cli/go-template.js';
import { EXIT_USAGE, exitCodeFor } from '../../src/cli/exit-codes.js';

const render = (t: string, data: unknown): string => compileTemplate(t).render(data);

const ctr = {
  ID: 'abc123',
  Names: 'web',
  State: 'running',
  Size: 42,
  Labels: { b: '2', a: '1' },
  Mounts: ['/data', '/logs'],
  Config: { Env: ['A=1', 'B=2'], Cmd: null },
};

describe('go templates (--format)', () => {
  it('fields, nested fields, dot, root and literal text', () => {
    expect(render('{{.ID}}\t{{.Names}}', ctr)).toBe('abc123\tweb');
    expect(render('id={{ .ID }}; env={{.Config.Env}}', ctr)).toBe('id=abc123; env=[A=1 B=2]');
    expect(render('{{.Labels}}', ctr)).toBe('map[a:1 b:2]');
    expect(render('{{.Config.Cmd}}', ctr)).toBe('<nil>');
    expect(render('{{.Nope}}|{{.Labels.zz}}', ctr)).toBe('<no value>|<no value>');
    expect(render('{{with .Config}}{{$.ID}}:{{len .Env}}{{end}}', ctr)).toBe('abc123:2');
    expect(render('{{.}}', 'plain')).toBe('plain');
  });

  it('json, join, upper/lower/title, truncate, pad, printf, println, index, split', () => {
    expect(JSON.parse(render('{{json .}}', ctr))).toEqual(ctr);
    expect(render('{{json .Labels}}', ctr)).toBe('{"b":"2","a":"1"}');
    expect(render('{{join .Mounts ","}}', ctr)).toBe('/data,/logs');
    expect(render('{{upper .Names}} {{lower "AbC"}} {{title "hello world"}}', ctr)).toBe('WEB abc Hello World');
    expect(render('{{truncate .ID 3}}|{{pad .Names 1 2}}|', ctr)).toBe('abc| web  |');
    expect(render('{{printf "%s has %d bytes (%q) 100%%" .Names .Size .State}}', ctr)).toBe('web has 42 bytes ("running") 100%');
    expect(render('{{printf "%-6s|" .Names}}', ctr)).toBe('web   |');
    expect(render('{{println .ID .Names}}', ctr)).toBe('abc123 web\n');
    expect(render('{{index .Labels "a"}} {{index .Mounts 1}} {{index .Config.Env 0}}', ctr)).toBe('1 /logs A=1');
    expect(render('{{index (split "x:y:z" ":") 2}}', ctr)).toBe('z');
    expect(render('{{.Names | upper | printf "<%s>"}}', ctr)).toBe('<WEB>');
  });

  it('if / else if / else, comparisons, and/or/not', () => {
    const t = '{{if eq .State "running"}}up{{else if eq .State "exited"}}down{{else}}?{{end}}';
    expect(render(t, { State: 'running' })).toBe('up');
    expect(render(t, { State: 'exited' })).toBe('down');
    expect(render(t, { State: 'created' })).toBe('?');
    expect(render('{{if gt .Size 40}}big{{end}}{{if lt .Size 40}}small{{end}}', ctr)).toBe('big');
    expect(render('{{if and .ID (not .Missing)}}ok{{end}}', ctr)).toBe('ok');
    expect(render('{{if or .Missing .Names}}{{or .Missing .Names}}{{end}}', ctr)).toBe('web');
    expect(render('{{if ne .Names "db"}}not db{{end}}', ctr)).toBe('not db');
    expect(render('{{if eq .Names "db" "web"}}one of{{end}}', ctr)).toBe('one of');
  });

  it('range over arrays and objects (sorted keys), with else; trimming and comments', () => {
    expect(render('{{range .Mounts}}[{{.}}]{{end}}', ctr)).toBe('[/data][/logs]');
    expect(render('{{range .Labels}}{{.}},{{end}}', ctr)).toBe('1,2,');
    expect(render('{{range .Empty}}x{{else}}none{{end}}', { Empty: [] })).toBe('none');
    expect(render('a  {{- .ID -}}  b{{/* a comment */}}', ctr)).toBe('aabc123b');
    expect(render('{{with .Missing}}yes{{else}}no{{end}}', ctr)).toBe('no');
  });

  it('prints values as Go does', () => {
    expect(goString([1, 'a', true])).toBe('[1 a true]');
    expect(goString({ z: [], a: { b: 1 } })).toBe('map[a:map[b:1] z:[]]');
  });

  it('bad templates are usage errors naming what is wrong (exit 2)', () => {
    for (const [t, msg] of [
      ['{{.ID', /unclosed action/],
      ['{{if .ID}}x', /missing \{\{end\}\}/],
      ['{{end}}', /unexpected \{\{end\}\}/],
      ['{{nosuchfn .ID}}', /function "nosuchfn" not defined/],
      ['{{.ID .Names}}', /can't give arguments/],
      ['{{"open}}', /unterminated string/],
      ['{{}}', /empty action/],
    ] as const) {
      let err: unknown;
      try {
        compileTemplate(t).render(ctr);
      } catch (e) {
        err = e;
      }
      expect(err, t).toBeInstanceOf(LayerfsError);
      expect((err as Error).message).toMatch(/^invalid --format: /);
      expect((err as Error).message).toMatch(msg);
      expect(exitCodeFor(err, 'ps')).toBe(EXIT_USAGE);
    }
    expect(() => render('{{lt .Names 3}}', ctr)).toThrow(/incompatible types/);
  });
});
