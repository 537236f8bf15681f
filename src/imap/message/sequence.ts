// Sequence sets (RFC 3501 9 sequence-set): parsing, membership, and the compact form
// ESEARCH and VANISHED send back.

/** Inclusive ranges; 0 stands for "*" (the largest number in use). */
export type SequenceSet = [number, number][];

export function parseSequenceSet(text: string): SequenceSet | undefined {
  if (!/^(?:(?:[1-9]\d*|\*)(?::(?:[1-9]\d*|\*))?)(?:,(?:[1-9]\d*|\*)(?::(?:[1-9]\d*|\*))?)*$/.test(text)) return undefined;
  return text.split(',').map((item) => {
    const [a, b = a] = item.split(':').map((n) => (n === '*' ? 0 : Number(n)));
    return [a!, b!];
  });
}

/** The set with "*" resolved to `max` and each range ordered low to high (RFC 3501 9: "*:4" = "4:*"). */
export function resolveSet(set: SequenceSet, max: number): SequenceSet {
  return set.map(([a, b]) => {
    const lo = a === 0 ? max : a;
    const hi = b === 0 ? max : b;
    return lo <= hi ? [lo, hi] : [hi, lo];
  });
}

export function inSet(n: number, resolved: SequenceSet): boolean {
  for (const [lo, hi] of resolved) if (n >= lo && n <= hi) return true;
  return false;
}

/** Ascending numbers as "1:3,5,7:9". */
export function formatSet(sorted: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(j === i ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}
