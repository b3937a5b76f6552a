// Inline-SVG charts drawn by the project (no chart library, no CDN). Every label goes in
// through textContent; numbers are formatted here. Each chart carries <title>/<desc> and the
// page shows its numbers in a table as well, for screen readers and for copying.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

function frame(width, height, title, desc) {
  const svg = s('svg', {viewBox: `0 0 ${width} ${height}`, role: 'img'});
  svg.append(s('title', {}, title), s('desc', {}, desc));
  return svg;
}

/** Stacked vertical bars: groups [{label, parts: {key: value}}], keys in stacking order. */
export function stackedBars(groups, keys, title) {
  const W = 560, H = 240, left = 40, bottom = 40, top = 10;
  const max = Math.max(1, ...groups.map((g) => keys.reduce((a, k) => a + (g.parts[k] || 0), 0)));
  const svg = frame(W, H, title, groups.map((g) => `${g.label}: ` +
    keys.map((k) => `${k} ${g.parts[k] || 0}`).join(', ')).join('; '));
  const plotH = H - bottom - top;
  const step = (W - left - 10) / Math.max(1, groups.length);
  const barW = Math.max(4, Math.min(48, step * 0.7));
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    svg.append(s('line', {x1: left, x2: W - 5, y1: y, y2: y, stroke: '#e4e7ec'}),
      s('text', {x: left - 4, y: y + 4, 'text-anchor': 'end'}, Math.round((max * i) / 4)));
  }
  groups.forEach((g, i) => {
    const x = left + i * step + (step - barW) / 2;
    let y = top + plotH;
    for (const k of keys) {
      const v = g.parts[k] || 0;
      if (!v) continue;
      const h = (plotH * v) / max;
      y -= h;
      const rect = s('rect', {x, y, width: barW, height: h, class: `c-${k}`});
      rect.append(s('title', {}, `${g.label} ${k}: ${v}`));
      svg.append(rect);
    }
    svg.append(s('text', {x: x + barW / 2, y: H - bottom + 14, 'text-anchor': 'middle'}, g.label));
  });
  return svg;
}

/** Horizontal bars: rows [{label, value, of?}] — with `of`, the bar shows value/of. */
export function hBars(rows, title, format = (v) => String(v)) {
  const W = 560, rowH = 26, left = 110, H = Math.max(1, rows.length) * rowH + 10;
  const max = Math.max(1e-9, ...rows.map((r) => (r.of !== undefined ? r.of : r.value)));
  const svg = frame(W, H, title, rows.map((r) => `${r.label}: ${format(r.value)}` +
    (r.of !== undefined ? ` / ${format(r.of)}` : '')).join('; '));
  rows.forEach((r, i) => {
    const y = 5 + i * rowH;
    const full = W - left - 80;
    svg.append(s('text', {x: left - 6, y: y + 15, 'text-anchor': 'end'}, r.label));
    if (r.of !== undefined) svg.append(s('rect', {x: left, y, width: full, height: 18, class: 'c-free'}));
    const w = Math.max(r.value > 0 ? 1 : 0, (full * r.value) / (r.of !== undefined ? Math.max(r.of, 1e-9) : max));
    svg.append(s('rect', {x: left, y, width: Math.min(w, full), height: 18, class: r.cls || 'c-used'}));
    svg.append(s('text', {x: left + Math.min(w, full) + 6, y: y + 14}, format(r.value) +
      (r.of !== undefined ? ` / ${format(r.of)}` : '')));
  });
  return svg;
}
