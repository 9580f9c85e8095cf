/**
 * `layerfs ui` in headless Chromium (Debian package `chromium`, driven by playwright-core):
 * the page draws the image's layers as sheets (plus the writable layer of a container),
 * colors the merged tree by serving layer, lists a layer's changes on click, and a write
 * in the running container shows up on the page as a copy-up event. A screenshot is saved
 * to node_modules/.cache/layerfs-test/ui-screenshot.png.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cliOk, LAYERFS, REPO } from '../helpers/cli.js';
import { run } from '../helpers/images.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

const CHROMIUM = '/usr/bin/chromium';
type Playwright = typeof import('playwright-core');
const playwright: Playwright | null = await import('playwright-core').catch(() => null);
const haveBrowser = playwright !== null && existsSync(CHROMIUM);
if (!haveBrowser) console.warn('\n*** layerfs: no playwright-core or no /usr/bin/chromium: the `layerfs ui` browser test is SKIPPED ***\n');

/**
 * The local addresses of listening TCP sockets on `port`, from /proc/net/tcp and tcp6
 * (addresses there are hex, each 32-bit word in host byte order: little-endian here).
 */
async function listeningAddresses(port: number): Promise<string[]> {
  const out: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== '0A') continue; // 0A: TCP_LISTEN
      const [addr, hexPort] = local.split(':') as [string, string];
      if (parseInt(hexPort, 16) !== port) continue;
      const bytes = Buffer.from(addr, 'hex');
      for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
      out.push(bytes.length === 4 ? [...bytes].join('.') : bytes.toString('hex').replace(/(.{4})(?!$)/g, '$1:'));
    }
  }
  return out.sort();
}

describe.skipIf(!inject('canMount') || !haveBrowser)('layerfs ui in a browser', () => {
  let root: string;
  let work: string;
  let ui: ChildProcess | undefined;
  let url: string;

  beforeAll(async () => {
    ({ work, root } = await storeWithSampleImage());
    ui = spawn(process.execPath, [LAYERFS, '--root', root, 'ui', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      ui!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /layerfs ui: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m) resolve(m[1]!);
      });
      ui!.on('exit', (code) => reject(new Error(`layerfs ui exited ${code}: ${out}`)));
    });
  });

  afterAll(async () => {
    if (ui?.pid && ui.exitCode === null) {
      const exited = new Promise((r) => ui!.on('exit', r));
      process.kill(ui.pid, 'SIGTERM');
      await exited;
    }
  });

  it('draws the layer stack and tree, lists a layer’s changes, and shows a write in the container as a copy-up', async () => {
    const mnt = join(work, 'm');
    await mkdir(mnt);
    await cliOk(root, ['mount', '--name', 'web', 'sample', mnt]);
    const browser = await playwright!.chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(`${url}?image=sample`);
      await page.waitForSelector('body[data-loaded="yes"]');
      expect(await page.locator('.sheet').count()).toBe(3);
      expect(await page.locator('#tree li[data-path="/etc/motd"]').getAttribute('data-layer')).toBe('1');
      expect(await page.locator('#tree li[data-path="/etc/passwd"]').getAttribute('data-layer')).toBe('0');
      await page.locator('.sheet[data-layer="1"]').click();
      await expect.poll(() => page.locator('#changes').innerText()).toMatch(/C \/etc\/motd[\s\S]*D \/etc\/os-release/);

      await page.goto(`${url}?container=web`);
      await page.waitForSelector('body[data-loaded="yes"][data-live="yes"]');
      expect(await page.locator('.sheet').count()).toBe(4);
      expect(await page.locator('.sheet').first().getAttribute('data-layer')).toBe('upper');
      await appendFile(join(mnt, 'etc', 'motd'), 'written while the page watches\n');
      await page.waitForSelector('#events li.event.copy-up[data-path="/etc/motd"]', { timeout: 20_000 });
      expect(await page.locator('#tree li[data-path="/etc/motd"]').getAttribute('data-layer')).toBe('upper');
      expect(await page.locator('#events li.event.copy-up[data-path="/etc/motd"]').innerText()).toMatch(/copy-up \/etc\/motd \(from layer 1\)/);
      // The writable layer's sheet lists its changes (as of the page load: before the write, none).
      await page.locator('.sheet[data-layer="upper"]').click();
      await expect.poll(() => page.locator('#dtitle').innerText()).toMatch(/^Writable layer/);
      await page.reload();
      await page.waitForSelector('body[data-loaded="yes"]');
      await page.locator('.sheet[data-layer="upper"]').click();
      // Appending copies /etc/motd up; /etc keeps its metadata, so it is no change of its own.
      await expect.poll(() => page.locator('#changes').innerText()).toBe('C /etc/motd');
      expect(await page.locator('.sheet[data-layer="upper"]').innerText()).toMatch(/1 change\b/);
      const shot = join(REPO, 'node_modules', '.cache', 'layerfs-test', 'ui-screenshot.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(existsSync(shot)).toBe(true);
    } finally {
      await browser.close();
      await cliOk(root, ['rm', '-f', 'web']);
    }
  });

  it('the build view: each step of a build, CACHED or why it missed, and the layer it produced', async () => {
    const ctx = join(work, 'buildctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'a.txt'), 'one\n');
    await writeFile(join(ctx, 'Dockerfile'), 'FROM sample\nCOPY a.txt /a.txt\nRUN echo ran > /ran\nENV X=1\n');
    await cliOk(root, ['build', '-t', 'viewed:1', ctx]);
    await writeFile(join(ctx, 'a.txt'), 'two\n');
    await cliOk(root, ['build', '-t', 'viewed:2', ctx]);
    await cliOk(root, ['build', '-t', 'viewed:2', ctx]);
    const browser = await playwright!.chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(`${url}?image=viewed:2`);
      await page.waitForSelector('body[data-builds="yes"]');
      // Newest first: the fully cached rebuild.
      expect(await page.locator('#bstatus').innerText()).toMatch(/3 cached, 0 ran/);
      expect(await page.locator('#steps tr.step[data-n="2"]').innerText()).toMatch(/COPY a\.txt \/a\.txt\s+CACHED[\s\S]*layer 3 · [0-9a-f]{12} · \d/);
      expect(await page.locator('#steps tr.step[data-n="4"]').innerText()).toMatch(/ENV X=1\s+CACHED[\s\S]*config only/);
      // The build after the edit: the COPY missed and says which file.
      await page.locator('#build').selectOption('1');
      expect(await page.locator('#steps tr.step[data-n="2"]').innerText()).toMatch(/MISS\s+source files differ \(changed: a\.txt\)/);
      expect(await page.locator('#steps tr.step[data-n="3"]').innerText()).toMatch(/MISS\s+its parent changed/);
    } finally {
      await browser.close();
    }
  });

  it('serves on 127.0.0.1 only and answers an unknown container with 404', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    // What the socket is bound to, as the kernel lists it (not what the server printed).
    expect(await listeningAddresses(Number(new URL(url).port))).toEqual(['127.0.0.1']);
    const r = await fetch(`${url}api/view?container=nobody`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: string }).error).toMatch(/no such container: nobody/);
  });
});
