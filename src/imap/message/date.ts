// Date header parsing (RFC 5322 3.3, with the obsolete forms of 4.3), lenient.

export interface SentDate {
  /** The instant, milliseconds since the epoch. */
  time: number;
  /** The calendar day in the header's own zone as YYYYMMDD (SENTON/SENTBEFORE ignore time and zone). */
  day: number;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

const ZONES: Record<string, number> = {
  ut: 0, utc: 0, gmt: 0, z: 0,
  est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420,
};

export function parseDateHeader(value: string | undefined): SentDate | null {
  if (!value) return null;
  const text = value.replace(/\([^)]*\)/g, ' ').trim();
  const m = /(\d{1,2})[\s-]+([a-z]{3})[a-z]*\.?[\s-]+(\d{2,4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?\s*([+-]\d{2}:?\d{2}|[a-z]{1,5})?/i.exec(text);
  if (!m) return fallback(text);
  const day = Number(m[1]);
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  let year = Number(m[3]);
  if (m[3]!.length === 2) year += year < 50 ? 2000 : 1900; // RFC 5322 4.3
  else if (m[3]!.length === 3) year += 1900;
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6] ?? 0);
  if (month < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return fallback(text);
  let offset = 0;
  const zone = m[7];
  if (zone && /^[+-]/.test(zone)) {
    const digits = zone.replace(':', '');
    offset = (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5))) * (digits[0] === '-' ? -1 : 1);
  } else if (zone) {
    offset = ZONES[zone.toLowerCase()] ?? 0;
  }
  const local = Date.UTC(year, month, day, hour, minute, Math.min(second, 59));
  if (Number.isNaN(local)) return null;
  return { time: local - offset * 60_000, day: year * 10000 + (month + 1) * 100 + day };
}

function fallback(text: string): SentDate | null {
  const time = Date.parse(text);
  if (Number.isNaN(time)) return null;
  return { time, day: utcDay(time) };
}

/** YYYYMMDD of an instant in UTC (internal dates are compared in UTC). */
export function utcDay(time: number): number {
  const d = new Date(time);
  return d.getUTCFullYear() * 10000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
}
