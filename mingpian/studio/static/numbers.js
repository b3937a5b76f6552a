// Phone numbers as people in China read them, for every page (the console, the reports): a stored
// E.164 mainland number in its national form with the usual spacing, any other as stored.
// delivery/readable.py does the same on the server (an unverified line's signature).

/** +8613800138000 → 138 0013 8000, +8675588881234 → 0755-8888 1234, +864008111111 → 400-811-1111. */
export function phone(number) {
  const m = /^\+86(\d+)$/.exec(number || '');
  if (!m) return number || '';
  const n = m[1];
  if (n.length === 11 && /^1[3-9]/.test(n)) return `${n.slice(0, 3)} ${n.slice(3, 7)} ${n.slice(7)}`;
  if (n.length === 10 && (n.startsWith('400') || n.startsWith('800'))) return `${n.slice(0, 3)}-${n.slice(3, 6)}-${n.slice(6)}`;
  const area = n.startsWith('10') || n[0] === '2' ? 2 : 3;
  const local = n.slice(area);
  if ((/^[2-9]/.test(n) || n.startsWith('10')) && local.length >= 7 && local.length <= 8) {
    return `0${n.slice(0, area)}-${local.slice(0, -4)} ${local.slice(-4)}`;
  }
  return number;
}

/** The readable number with all but its first three and last four digits hidden: 138 **** 8000. */
export function maskedPhone(number) {
  const shown = phone(number);
  const total = (shown.match(/\d/g) || []).length;
  if (total <= 7) return shown;
  let i = 0;
  return shown.replace(/\d/g, (d) => (i++ >= 3 && i <= total - 4 ? '*' : d));
}
