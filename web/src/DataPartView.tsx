/**
 * A `data-*` part: progress that a tool streams while it works (e.g. a tool whose work runs as a
 * Celery task), shown as a bar with its message; any other data as JSON.
 *
 * Progress is read from the part's data by common names: a fraction or percentage (`progress`,
 * `percent`), or a count (`done` / `completed` / `current` / `step` of `total` / `steps`), and a
 * line of text (`message`, `label`, `status`, `stage`, `text`); `tool` names it.
 */

interface DataPart {
  type: string;
  id?: string;
  data?: unknown;
}

type Fields = Record<string, unknown>;

const json = (value: unknown): string => JSON.stringify(value, null, 2) ?? "";

function numberOf(fields: Fields, names: string[]): number | undefined {
  for (const name of names) {
    const value = fields[name];
    if (typeof value === "number" && Number.isFinite(value)) return value;
  }
  return undefined;
}

function textOf(fields: Fields, names: string[]): string | undefined {
  for (const name of names) {
    const value = fields[name];
    if (typeof value === "string" && value.trim()) return value;
  }
  return undefined;
}

/** The part's progress as a fraction in [0, 1], when its data says how far it is. */
export function fractionOf(fields: Fields): number | undefined {
  let fraction: number | undefined;
  const progress = numberOf(fields, ["progress", "fraction"]);
  const percent = numberOf(fields, ["percent", "percentage"]);
  const total = numberOf(fields, ["total", "steps", "of"]);
  const done = numberOf(fields, ["done", "completed", "current", "step", "count"]);
  if (progress !== undefined) fraction = progress > 1 ? progress / 100 : progress;
  else if (percent !== undefined) fraction = percent / 100;
  else if (done !== undefined && total !== undefined && total > 0) fraction = done / total;
  return fraction === undefined ? undefined : Math.min(1, Math.max(0, fraction));
}

function countOf(fields: Fields): string | undefined {
  const total = numberOf(fields, ["total", "steps", "of"]);
  const done = numberOf(fields, ["done", "completed", "current", "step", "count"]);
  return done !== undefined && total !== undefined ? `${done} / ${total}` : undefined;
}

export function DataPartView({ part }: { part: DataPart }) {
  const data = part.data;
  const fields = typeof data === "object" && data !== null && !Array.isArray(data) ? (data as Fields) : undefined;
  // Named after the tool that reports it (`tool`), else the part's own name.
  const name = (fields && textOf(fields, ["tool", "name"])) ?? part.type.slice("data-".length);
  const fraction = fields ? fractionOf(fields) : undefined;
  const label = fields ? textOf(fields, ["message", "label", "status", "stage", "text"]) : undefined;
  if (fraction === undefined && label === undefined) {
    return (
      <pre className="data" data-testid="data-part" data-name={part.type.slice("data-".length)}>
        {json(data)}
      </pre>
    );
  }
  const percent = fraction === undefined ? undefined : Math.round(fraction * 100);
  const count = fields ? countOf(fields) : undefined;
  return (
    <div className={`progress-part${percent === 100 ? " complete" : ""}`} data-testid="data-part"
      data-name={part.type.slice("data-".length)}
      data-percent={percent}>
      <div className="progress-head">
        <span className="progress-name">{name}</span>
        <span className="progress-label" data-testid="progress-label">
          {label}
        </span>
        {(count !== undefined || percent !== undefined) && (
          <span className="progress-count" data-testid="progress-count">
            {count ?? `${percent}%`}
          </span>
        )}
      </div>
      {percent !== undefined && (
        <div className="progress-track" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={percent}
          data-testid="progress">
          <div className="progress-fill" style={{ width: `${percent}%` }} />
        </div>
      )}
    </div>
  );
}
