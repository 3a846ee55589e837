/**
 * Small Preact hooks the views share: a ticking clock for countdowns, re-rendering on an
 * external store's change, and the busy/error/result state of a control-API action.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { describeError } from './connection.js';

/** The current time, refreshed every `everyMs` while the component is mounted (countdowns, ages). */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => { setNow(Date.now()); }, everyMs);
    return () => { clearInterval(t); };
  }, [everyMs]);
  return now;
}

/** Something that reports changes: the connection, the sessions index. */
export interface ChangeSource {
  onChange(fn: () => void): () => void;
}

/** Re-renders when `source` reports a change (the index already batches per animation frame). */
export function useSubscription(source: ChangeSource): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const off = source.onChange(() => { setTick((n) => n + 1); });
    setTick((n) => n + 1); // a change between the first render and this effect would be missed otherwise
    return off;
  }, [source]);
  return tick;
}

/** State of one control: in flight, the last error (code and message) or the last success text. */
export interface ActionState {
  readonly busy: boolean;
  readonly error: string;
  readonly ok: string;
  /** Runs `fn`; its resolved string becomes `ok`, a rejection becomes `error`. */
  run(fn: () => Promise<string>): Promise<void>;
  clear(): void;
}

/** Tracks one action's outcome so each form shows its own result in place. */
export function useAction(): ActionState {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [ok, setOk] = useState('');
  const mounted = useRef(true);
  useEffect(() => () => { mounted.current = false; }, []);
  const run = useCallback(async (fn: () => Promise<string>) => {
    setBusy(true);
    setError('');
    setOk('');
    try {
      const text = await fn();
      if (mounted.current) setOk(text);
    } catch (e) {
      if (mounted.current) setError(describeError(e));
    } finally {
      if (mounted.current) setBusy(false);
    }
  }, []);
  const clear = useCallback(() => { setError(''); setOk(''); }, []);
  return { busy, error, ok, run, clear };
}

/**
 * What a text box holds as a message body: JSON when it parses as an object, array, number,
 * boolean or null (or a quoted string), otherwise the text itself.
 */
export function parseBody(text: string): unknown {
  const t = text.trim();
  if (t === '') return '';
  if (/^[[{"\d-]|^(true|false|null)$/.test(t)) {
    try { return JSON.parse(t) as unknown; } catch { return text; }
  }
  return text;
}
