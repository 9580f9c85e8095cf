/**
 * The single page of `layerfs ui`: plain HTML, CSS and script, no build step and nothing
 * fetched from outside (it must work offline on 127.0.0.1). It reads the JSON API of
 * ui-server.ts and, for a container, its event stream.
 */
export const UI_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>layerfs — layers and copy-on-write</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
  header { padding: 10px 16px; background: #263238; color: #fff; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; }
  main { display: grid; grid-template-columns: 420px 1fr 360px; gap: 16px; padding: 16px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  #stack { position: relative; }
  .sheet { position: relative; margin: -18px 0 0 0; padding: 10px 12px; border-radius: 6px; color: #fff; cursor: pointer;
           transform: perspective(600px) rotateX(28deg); box-shadow: 0 6px 10px rgba(0,0,0,.25); border: 2px solid transparent; }
  .sheet:first-child { margin-top: 0; }
  .sheet.selected { border-color: #000; }
  .sheet .meta { font-size: 12px; opacity: .9; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  ul, ol { list-style: none; padding: 0; margin: 0; }
  #tree li { font-family: ui-monospace, monospace; font-size: 12px; padding: 1px 4px; white-space: nowrap; }
  #tree li::before { content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; background: var(--c); }
  #tree li.flash { animation: flash 1.5s; }
  @keyframes flash { from { background: #ffeb3b; } to { background: transparent; } }
  #treebox { max-height: 80vh; overflow: auto; }
  #changes li, #events li { font-family: ui-monospace, monospace; font-size: 12px; overflow-wrap: anywhere; }
  .A { color: #2e7d32; } .C { color: #ef6c00; } .D { color: #c62828; }
  #events li { padding: 2px 0; border-bottom: 1px solid #eee; }
  #status { font-size: 12px; opacity: .8; }
  #builds { grid-column: 1 / -1; }
  #builds table { border-collapse: collapse; width: 100%; font-size: 12px; }
  #builds td, #builds th { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
  #builds td.text { font-family: ui-monospace, monospace; }
  .hit { color: #2e7d32; font-weight: 600; } .miss { color: #c62828; font-weight: 600; }
  .why { color: #555; font-size: 11px; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
</style></head>
<body>
<header><h1>layerfs</h1><select id="subject"></select><span id="status">loading…</span></header>
<main>
  <section><h2>Layer stack (bottom layer at the bottom; click a sheet)</h2><div id="stack"></div>
    <h2 style="margin-top:16px" id="dtitle">Layer changes</h2><ul id="changes"></ul></section>
  <section id="treebox"><h2>Merged tree, colored by the layer that serves each path</h2><ul id="tree"></ul></section>
  <section><h2>Live copy-on-write events</h2><ol id="events"></ol></section>
  <section id="builds"><h2>Builds <select id="build"></select> <span id="bstatus"></span></h2>
    <table><thead><tr><th>#</th><th>stage</th><th>instruction</th><th>cache</th><th>time</th><th>layer produced</th></tr></thead><tbody id="steps"></tbody></table></section>
</main>
<script>
const palette = ['#1565c0', '#6a1b9a', '#00838f', '#558b2f', '#4e342e', '#283593', '#ad1457', '#00695c', '#37474f', '#9e9d24'];
const colorOf = (layer) => layer === 'upper' ? '#e65100' : palette[layer % palette.length];
const q = new URLSearchParams(location.search);
const el = (tag, props, text) => { const e = document.createElement(tag); Object.assign(e, props || {}); if (text !== undefined) e.textContent = text; return e; };
const human = (n) => { const u = ['B','kB','MB','GB','TB']; let i = 0; while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; } return Number(n.toPrecision(3)) + u[i]; };

async function main() {
  const subjects = await (await fetch('/api/subjects')).json();
  const sel = document.getElementById('subject');
  const options = [
    ...subjects.containers.map((c) => ({ key: 'container=' + encodeURIComponent(c.name), label: 'container ' + c.name + ' (' + c.imageRef + ', ' + c.state + ')' })),
    ...subjects.images.map((i) => ({ key: 'image=' + encodeURIComponent(i.tags[0] || i.id), label: 'image ' + (i.tags[0] || i.id.slice(7, 19)) })),
  ];
  for (const o of options) sel.append(el('option', { value: o.key }, o.label));
  let current = q.get('container') ? 'container=' + encodeURIComponent(q.get('container')) : q.get('image') ? 'image=' + encodeURIComponent(q.get('image')) : options[0] && options[0].key;
  if (!current) { document.getElementById('status').textContent = 'no images in this store'; return; }
  sel.value = current;
  sel.onchange = () => { location.search = '?' + sel.value; };
  const view = await (await fetch('/api/view?' + current)).json();
  if (view.error) { document.getElementById('status').textContent = view.error; return; }
  draw(view);
  document.getElementById('status').textContent = view.layers.length + (view.layers.length === 1 ? ' layer' : ' layers') + ' · wasted ' + human(view.wastedBytes) + ' · efficiency ' + (view.efficiency * 100).toFixed(1) + ' %';
  document.body.dataset.loaded = 'yes';
  if (view.subject.container) live(view.subject.container);
}

function draw(view) {
  const stack = document.getElementById('stack');
  const sheets = [];
  if (view.subject.container) {
    const s = el('div', { className: 'sheet upper' });
    s.dataset.layer = 'upper';
    s.style.background = colorOf('upper');
    s.append(el('div', {}, 'writable layer (container ' + view.subject.container + ') · ' + view.upperChanges.length + (view.upperChanges.length === 1 ? ' change' : ' changes')), el('div', { className: 'meta' }, 'copy-ups and new files land here'));
    s.onclick = () => showChanges(s, 'Writable layer: changes to the image (as layerfs diff)', view.upperChanges.map((c) => [c.kind, c.path]));
    sheets.push(s);
  }
  for (const l of [...view.layers].reverse()) {
    const s = el('div', { className: 'sheet' });
    s.dataset.layer = String(l.position);
    s.style.background = colorOf(l.position);
    s.append(el('div', {}, 'layer ' + l.position + ' · ' + human(l.size) + (l.bytesWasted ? ' · wasted ' + human(l.bytesWasted) : '') + ' · +' + l.added.length + ' ~' + l.modified.length + ' -' + l.removed.length),
             el('div', { className: 'meta', title: l.createdBy }, l.createdBy || '(no history)'));
    s.onclick = () => showLayer(l, s);
    sheets.push(s);
  }
  stack.replaceChildren(...sheets);
  const tree = document.getElementById('tree');
  tree.replaceChildren(...view.tree.map(treeItem));
}

function treeItem(t) {
  const depth = t.path.split('/').length - 2;
  const li = el('li', {}, t.path.split('/').pop() + (t.dir ? '/' : ''));
  li.dataset.path = t.path;
  li.dataset.layer = String(t.layer);
  li.style.paddingLeft = (4 + depth * 14) + 'px';
  li.style.setProperty('--c', colorOf(t.layer));
  li.title = t.path + ' — ' + (t.layer === 'upper' ? 'writable layer' : 'layer ' + t.layer);
  return li;
}

function showLayer(l, sheet) {
  const rows = [...l.added.map((p) => ['A', p]), ...l.modified.map((p) => ['C', p]), ...l.removed.map((p) => ['D', p])].sort((a, b) => a[1] < b[1] ? -1 : 1);
  showChanges(sheet, 'Layer ' + l.position + ': ' + (l.createdBy || ''), rows);
}

function showChanges(sheet, title, rows) {
  document.querySelectorAll('.sheet').forEach((s) => s.classList.remove('selected'));
  sheet.classList.add('selected');
  document.getElementById('dtitle').textContent = title;
  document.getElementById('changes').replaceChildren(...rows.map(([k, p]) => el('li', { className: k }, k + ' ' + p)));
}

function live(name) {
  const src = new EventSource('/api/events?container=' + encodeURIComponent(name));
  src.addEventListener('ready', () => { document.body.dataset.live = 'yes'; });
  src.onmessage = (m) => {
    const e = JSON.parse(m.data);
    const li = el('li', { className: 'event ' + e.event }, e.time.slice(11, 23) + ' ' + e.event + ' ' + e.path + (e.from ? ' ← ' + e.from : '') + (e.layer !== undefined ? ' (from layer ' + e.layer + ')' : '') + (e.bytes !== undefined ? ' ' + human(e.bytes) : ''));
    li.dataset.path = e.path;
    document.getElementById('events').prepend(li);
    const tree = document.getElementById('tree');
    let item = tree.querySelector('li[data-path="' + CSS.escape(e.path) + '"]');
    if (e.event === 'whiteout' || e.event === 'remove') { if (item) item.remove(); return; }
    if (!item) { item = treeItem({ path: e.path, dir: false, layer: 'upper' }); tree.append(item); }
    item.dataset.layer = 'upper';
    item.style.setProperty('--c', colorOf('upper'));
    item.classList.remove('flash'); void item.offsetWidth; item.classList.add('flash');
  };
}
async function builds() {
  const list = await (await fetch('/api/builds')).json();
  const sel = document.getElementById('build');
  if (list.length === 0) { document.getElementById('bstatus').textContent = 'no builds yet (layerfs build)'; return; }
  list.forEach((b, i) => sel.append(el('option', { value: String(i) }, b.started.replace('T', ' ').slice(0, 19) + ' ' + (b.tags[0] || (b.id ? b.id.slice(7, 19) : 'failed')))));
  const show = () => {
    const b = list[Number(sel.value)];
    const hits = b.steps.filter((s) => s.cached).length;
    document.getElementById('bstatus').textContent = b.seconds.toFixed(1) + ' s · ' + hits + ' cached, ' + b.steps.filter((s) => s.reason).length + ' ran' + (b.error ? ' · FAILED: ' + b.error : '');
    document.getElementById('steps').replaceChildren(...b.steps.map(stepRow));
  };
  sel.onchange = show;
  show();
  document.body.dataset.builds = 'yes';
}

function stepRow(s) {
  const tr = el('tr', { className: 'step' });
  tr.dataset.n = String(s.n);
  const cache = el('td');
  if (s.cached) cache.append(el('span', { className: 'hit' }, 'CACHED'));
  else if (s.reason) cache.append(el('span', { className: 'miss' }, 'MISS'), el('div', { className: 'why' }, s.reason));
  const layer = el('td');
  if (s.layer) {
    const sw = el('span', { className: 'swatch' });
    sw.style.background = colorOf(s.layer.position);
    layer.append(sw, document.createTextNode('layer ' + s.layer.position + ' · ' + s.layer.diffId.slice(7, 19) + ' · ' + human(s.layer.size)));
  } else layer.textContent = s.text.startsWith('ARG') ? '' : 'config only';
  tr.append(el('td', {}, String(s.n)), el('td', {}, s.stage), el('td', { className: 'text' }, s.text), cache, el('td', {}, s.seconds.toFixed(2) + ' s'), layer);
  return tr;
}
main().catch((err) => { document.getElementById('status').textContent = String(err); });
builds().catch((err) => { document.getElementById('bstatus').textContent = String(err); });
</script>
</body></html>
`;
