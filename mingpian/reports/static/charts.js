// Inline-SVG charts drawn by the project (no chart library, no CDN). Every label goes in
// through textContent; numbers are formatted here. Each chart carries <title>/<desc> and the
// page shows its numbers in a table as well, for screen readers and for copying.
//
// A chart is drawn at the pixel width of its box (viewBox width = CSS width), so its 12 px
// labels are 12 px on screen whatever the window; the page redraws on resize.

const NS = 'http://www.w3.org/2000/svg';
export const FONT_PX = 12;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

function frame(width, height, title, desc) {
  const svg = s('svg', {viewBox: `0 0 ${width} ${height}`, width, height, role: 'img'});
  svg.append(s('title', {}, title), s('desc', {}, desc));
  return svg;
}

/**
 * A box whose chart, `draw(width)`, is drawn at the box's own pixel width, now and whenever that
 * width changes (a window resized, a phone turned): its labels stay 12 px.
 */
export function sized(draw) {
  const box = document.createElement('div');
  box.className = 'chart';
  let drawn = -1;
  new ResizeObserver(() => {
    const w = box.clientWidth;
    if (w > 0 && w !== drawn) {
      drawn = w;
      box.replaceChildren(draw(w));
    }
  }).observe(box);
  return box;
}

/** 1, 2, 5 × 10^n at or above `max / 4`: round gridline steps. */
function niceStep(max) {
  const raw = max / 4;
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw) || p * 10;
}

/**
 * Stacked vertical bars. groups [{label, parts: {key: value}}], keys in stacking order,
 * names: key → legend word, format: axis and tooltip numbers.
 */
export function stackedBars(groups, keys, title, {width = 560, names = {}, format = (v) => String(v), whole = false} = {}) {
  const W = Math.max(280, Math.round(width)), H = 250, bottom = 34, top = 12;
  const total = (g) => keys.reduce((a, k) => a + (g.parts[k] || 0), 0);
  const rawMax = Math.max(0, ...groups.map(total));
  const step = whole ? Math.max(1, niceStep(rawMax || 1)) : niceStep(rawMax || 1); // counts: whole steps
  const max = Math.max(step, Math.ceil(rawMax / step) * step);
  const left = Math.max(36, 10 + FONT_PX * 0.62 * format(max).length);
  const svg = frame(W, H, title, groups.map((g) => `${g.label}：` +
    keys.map((k) => `${names[k] || k} ${format(g.parts[k] || 0)}`).join('，')).join('；') || '没有数据');
  const plotH = H - bottom - top;
  const plotW = W - left - 8;
  for (let v = 0; v <= max + 1e-9; v += step) {
    const y = top + plotH - (plotH * v) / max;
    svg.append(s('line', {x1: left, x2: W - 4, y1: y, y2: y, class: 'grid'}),
      s('text', {x: left - 5, y: y + 4, 'text-anchor': 'end'}, format(v)));
  }
  const slot = plotW / Math.max(1, groups.length);
  const barW = Math.max(3, Math.min(44, slot * 0.7));
  const labelW = Math.max(...groups.map((g) => g.label.length), 1) * FONT_PX * 0.62 + 6;
  const every = Math.max(1, Math.ceil(labelW / slot)); // skip labels that would overlap
  groups.forEach((g, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let y = top + plotH;
    for (const k of keys) {
      const v = g.parts[k] || 0;
      if (!v) continue;
      const h = (plotH * v) / max;
      y -= h;
      const rect = s('rect', {x, y, width: barW, height: h, class: `c-${k}`});
      rect.append(s('title', {}, `${g.label} ${names[k] || k}：${format(v)}`));
      svg.append(rect);
    }
    if (i % every === 0) {
      svg.append(s('text', {x: x + barW / 2, y: H - bottom + 16, 'text-anchor': 'middle'}, g.label));
    }
  });
  if (!groups.length) svg.append(s('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle'}, '这段时间没有数据'));
  return svg;
}

/** Horizontal bars: rows [{label, value, of?, text?}] — with `of`, the bar shows value/of. */
export function hBars(rows, title, {width = 560, format = (v) => String(v)} = {}) {
  const W = Math.max(280, Math.round(width)), rowH = 30;
  const H = Math.max(1, rows.length) * rowH + 10;
  const labelW = Math.min(W * 0.35, Math.max(48, ...rows.map((r) => r.label.length * FONT_PX * 0.95 + 12)));
  const textW = Math.min(W * 0.35, Math.max(60, ...rows.map((r) => (r.text ?? format(r.value)).length * FONT_PX * 0.62 + 10)));
  const max = Math.max(1e-9, ...rows.map((r) => (r.of !== undefined ? r.of : r.value)));
  const svg = frame(W, H, title, rows.map((r) => `${r.label}：${r.text ?? format(r.value)}`).join('；') || '没有数据');
  const full = W - labelW - textW;
  rows.forEach((r, i) => {
    const y = 6 + i * rowH;
    svg.append(s('text', {x: labelW - 6, y: y + 15, 'text-anchor': 'end'}, r.label));
    if (r.of !== undefined) svg.append(s('rect', {x: labelW, y, width: full, height: 20, class: 'c-free'}));
    const w = Math.max(r.value > 0 ? 1 : 0, (full * r.value) / (r.of !== undefined ? Math.max(r.of, 1e-9) : max));
    svg.append(s('rect', {x: labelW, y, width: Math.min(w, full), height: 20, class: r.cls || 'c-used'}));
    svg.append(s('text', {x: labelW + (r.of !== undefined ? full : Math.min(w, full)) + 6, y: y + 15}, r.text ?? format(r.value)));
  });
  if (!rows.length) svg.append(s('text', {x: W / 2, y: H / 2 + 4, 'text-anchor': 'middle'}, '没有数据'));
  return svg;
}

/**
 * Rates with their intervals: rows [{label, rate, low, high, text?}] (shares 0–1, null when there
 * is nothing to divide by). Each row a bar to its rate and a whisker from `low` to `high` with end
 * caps; the axis runs from 0 to a round share above the highest interval, so small rates are
 * readable side by side.
 */
export function intervalBars(rows, title, {width = 560} = {}) {
  const W = Math.max(280, Math.round(width)), rowH = 30, top = 18;
  const H = top + Math.max(1, rows.length) * rowH + 6;
  const pct = (v) => `${Math.round(v * 1000) / 10}%`;
  const textOf = (r) => r.text ?? (r.rate === null ? '—' : `${pct(r.rate)}（${pct(r.low)}–${pct(r.high)}）`);
  const labelW = Math.min(W * 0.3, Math.max(48, ...rows.map((r) => r.label.length * FONT_PX * 0.95 + 12)));
  const textW = Math.min(W * 0.42, Math.max(60, ...rows.map((r) => textOf(r).length * FONT_PX * 0.8 + 10)));
  const highest = Math.max(0.01, ...rows.map((r) => (r.high ?? r.rate ?? 0)));
  const step = niceStep(Math.min(1, highest));
  const max = Math.min(1, Math.ceil(highest / step) * step) || 1;
  const full = W - labelW - textW;
  const x = (v) => labelW + (full * Math.min(v, max)) / max;
  const svg = frame(W, H, title, rows.map((r) => `${r.label}：${textOf(r)}`).join('；') || '没有数据');
  for (let v = 0; v <= max + 1e-9; v += step) {
    svg.append(s('line', {x1: x(v), x2: x(v), y1: top - 4, y2: H - 4, class: 'grid'}));
  }
  svg.append(s('text', {x: labelW, y: 12, 'text-anchor': 'start'}, '0'),
    s('text', {x: labelW + full, y: 12, 'text-anchor': 'end'}, pct(max)));
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    svg.append(s('text', {x: labelW - 6, y: y + 15, 'text-anchor': 'end'}, r.label));
    if (r.rate !== null && r.rate !== undefined) {
      const bar = s('rect', {x: labelW, y: y + 3, width: Math.max(r.rate > 0 ? 1 : 0, x(r.rate) - labelW), height: 14,
        class: r.cls || 'c-used'});
      bar.append(s('title', {}, `${r.label}：${textOf(r)}`));
      const mid = y + 10;
      const whisker = s('g', {class: 'whisker'});
      whisker.append(s('line', {x1: x(r.low), x2: x(r.high), y1: mid, y2: mid}),
        s('line', {x1: x(r.low), x2: x(r.low), y1: mid - 6, y2: mid + 6}),
        s('line', {x1: x(r.high), x2: x(r.high), y1: mid - 6, y2: mid + 6}));
      svg.append(bar, whisker);
    }
    svg.append(s('text', {x: labelW + full + 6, y: y + 15}, textOf(r)));
  });
  if (!rows.length) svg.append(s('text', {x: W / 2, y: H / 2 + 4, 'text-anchor': 'middle'}, '没有数据'));
  return svg;
}
