// Test helper: a strict parser of the Prometheus text exposition format 0.0.4, with the checks a scraper relies on.

/** One sample line: `name{labels} value`. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A parsed exposition. */
export interface Exposition {
  /** `# TYPE` of every family, by family name. */
  readonly types: ReadonlyMap<string, string>;
  /** `# HELP` of every family, by family name. */
  readonly helps: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/**
 * Parses `text`, throwing on anything a strict scraper would refuse: a line
 * that is neither `# HELP`, `# TYPE` nor `name{labels} value`; a family typed
 * twice, or typed after its samples; a sample of a family without `# TYPE`;
 * a duplicate series; a counter not named `_total`; a histogram whose
 * buckets are not cumulative or whose `le="+Inf"` bucket differs from `_count`.
 */
export function parsePrometheus(text: string): Exposition {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  const samples: Sample[] = [];
  const seenSeries = new Set<string>();
  const sampled = new Set<string>();
  const lines = text.slice(0, -1).split("\n");
  for (const [n, line] of lines.entries()) {
    const where = `line ${n + 1}: ${JSON.stringify(line)}`;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (m === null) throw new Error(`bad comment, ${where}`);
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`bad metric name, ${where}`);
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`bad type, ${where}`);
        if (types.has(name)) throw new Error(`second TYPE, ${where}`);
        if (sampled.has(name)) throw new Error(`TYPE after samples, ${where}`);
        types.set(name, rest);
      } else {
        if (helps.has(name)) throw new Error(`second HELP, ${where}`);
        helps.set(name, rest);
      }
      continue;
    }
    const sample = parseSample(line, where);
    const family = familyOf(sample.name, types);
    if (family === undefined) throw new Error(`sample without TYPE, ${where}`);
    sampled.add(family);
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seenSeries.has(key)) throw new Error(`duplicate series, ${where}`);
    seenSeries.add(key);
    samples.push(sample);
  }
  for (const [name, type] of types) {
    if (type === "counter" && !name.endsWith("_total")) {
      throw new Error(`counter ${name} is not named _total`);
    }
    if (type === "histogram") checkHistogram(name, samples);
  }
  return { types, helps, samples };
}

/** The samples of `name` (exact series name). */
export function series(e: Exposition, name: string): Sample[] {
  return e.samples.filter((s) => s.name === name);
}

/** The single sample of `name` whose labels include `labels`; throws unless exactly one. */
export function value(
  e: Exposition,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const found = series(e, name).filter((s) =>
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  if (found.length !== 1) {
    throw new Error(`expected one ${name}${JSON.stringify(labels)}, found ${found.length}`);
  }
  return found[0]!.value;
}

function familyOf(name: string, types: ReadonlyMap<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const t = types.get(base);
    if (t === "histogram" || t === "summary") return base;
  }
  return undefined;
}

function parseSample(line: string, where: string): Sample {
  let i = 0;
  while (i < line.length && line[i] !== "{" && line[i] !== " ") i++;
  const name = line.slice(0, i);
  if (!NAME.test(name)) throw new Error(`bad sample name, ${where}`);
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const eq = line.indexOf("=", i);
      if (eq < 0) throw new Error(`bad label, ${where}`);
      const label = line.slice(i, eq);
      if (!LABEL_NAME.test(label)) throw new Error(`bad label name, ${where}`);
      if (line[eq + 1] !== '"') throw new Error(`unquoted label value, ${where}`);
      let j = eq + 2;
      let v = "";
      for (;;) {
        const c = line[j];
        if (c === undefined) throw new Error(`unterminated label value, ${where}`);
        if (c === '"') break;
        if (c === "\\") {
          const next = line[j + 1];
          if (next === "n") v += "\n";
          else if (next === "\\" || next === '"') v += next;
          else throw new Error(`bad escape, ${where}`);
          j += 2;
        } else {
          v += c;
          j++;
        }
      }
      if (label in labels) throw new Error(`label twice, ${where}`);
      labels[label] = v;
      i = j + 1;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`bad label separator, ${where}`);
    }
    i++;
  }
  if (line[i] !== " ") throw new Error(`missing value, ${where}`);
  const parts = line.slice(i + 1).split(" ");
  if (parts.length > 2) throw new Error(`too many fields, ${where}`);
  const raw = parts[0]!;
  const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
  if (raw === "" || (Number.isNaN(value) && raw !== "NaN")) throw new Error(`bad value, ${where}`);
  if (parts.length === 2 && !/^-?\d+$/.test(parts[1]!)) throw new Error(`bad timestamp, ${where}`);
  return { name, labels, value };
}

function checkHistogram(name: string, samples: readonly Sample[]): void {
  const key = (labels: Readonly<Record<string, string>>) =>
    JSON.stringify(Object.entries(labels).filter(([k]) => k !== "le").sort());
  const buckets = new Map<string, { le: number; value: number }[]>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le;
    if (le === undefined) throw new Error(`${name}_bucket without le`);
    const bound = le === "+Inf" ? Infinity : Number(le);
    if (Number.isNaN(bound)) throw new Error(`${name}_bucket with le=${le}`);
    const k = key(s.labels);
    buckets.set(k, [...(buckets.get(k) ?? []), { le: bound, value: s.value }]);
  }
  for (const [k, list] of buckets) {
    for (let i = 1; i < list.length; i++) {
      if (!(list[i]!.le > list[i - 1]!.le)) throw new Error(`${name}${k}: le not ascending`);
      if (list[i]!.value < list[i - 1]!.value) throw new Error(`${name}${k}: not cumulative`);
    }
    const inf = list[list.length - 1];
    if (inf?.le !== Infinity) throw new Error(`${name}${k}: no le="+Inf" bucket`);
    const count = samples.find((s) => s.name === `${name}_count` && key(s.labels) === k);
    const sum = samples.find((s) => s.name === `${name}_sum` && key(s.labels) === k);
    if (count === undefined || sum === undefined) throw new Error(`${name}${k}: no _count/_sum`);
    if (count.value !== inf.value) throw new Error(`${name}${k}: +Inf bucket != _count`);
  }
}
