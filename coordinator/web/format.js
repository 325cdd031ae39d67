// Formatting of times, durations, sizes and states for the dashboard. Times are the
// browser's local time; -1 and missing values show as an en dash.

export const DASH = '\u2013';

const pad = (n, w = 2) => String(n).padStart(w, '0');

function missing(v) {
  return v === null || v === undefined || (typeof v === 'number' && (v < 0 || !isFinite(v)));
}

// Wall-clock time in ms -> "14:02:07" today, "2026-11-23 14:02:07" another day.
export function time(ms) {
  if (missing(ms) || ms === 0) return DASH;
  const d = new Date(ms);
  const now = new Date();
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}

// Milliseconds -> "850 ms", "4.2 s", "3m 05s", "2h 03m", "3d 4h".
export function duration(ms) {
  if (missing(ms)) return DASH;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${pad(m % 60)}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

// Bytes -> "512 B", "1.5 KiB", "12.0 MiB".
export function bytes(n) {
  if (missing(n)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function num(n) {
  if (missing(n)) return DASH;
  return Number(n).toLocaleString('en-US');
}

export function shortId(id) {
  return typeof id === 'string' && id.length > 12 ? id.slice(0, 8) : (id || DASH);
}

// Time since a wall-clock stamp, by the browser's clock (clamped at 0).
export function age(ms, now = Date.now()) {
  if (missing(ms) || ms === 0) return DASH;
  return duration(Math.max(0, now - ms));
}

// Job (JobStatus) and task (ExecutionState) states -> a CSS class for the badge.
const STATE_CLASS = {
  RUNNING: 'ok', FINISHED: 'done', CREATED: 'wait', INITIALIZING: 'wait', SCHEDULED: 'wait',
  DEPLOYING: 'wait', RECONCILING: 'wait', RESTARTING: 'warn', FAILING: 'bad', FAILED: 'bad',
  CANCELLING: 'warn', CANCELING: 'warn', CANCELED: 'muted', SUSPENDED: 'warn',
  COMPLETED: 'ok', IN_PROGRESS: 'wait',
  leader: 'ok', standby: 'info', suspended: 'warn', electing: 'bad', starting: 'muted',
  stopping: 'muted',
};

export function stateClass(state) {
  return `state-${STATE_CLASS[state] || 'muted'}`;
}

export const JOB_TERMINAL = new Set(['FINISHED', 'CANCELED', 'FAILED']);
export const TASK_STATES = ['CREATED', 'SCHEDULED', 'DEPLOYING', 'INITIALIZING', 'RUNNING',
  'RECONCILING', 'FINISHED', 'CANCELING', 'CANCELED', 'FAILED'];
