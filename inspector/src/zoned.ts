/**
 * Owns how a time reads in another time zone: a cron task's next run is shown in the zone its
 * schedule runs in (`Mon 30 Nov, 09:30 Asia/Tokyo`), not only in the browser's. Pure: the model
 * tests run it in Node.
 */
import { formatTime } from './format.js';

const zoned = new Map<string, Intl.DateTimeFormat>();
/** A time as read in `timeZone` (`Mon 9 Dec 09:00 Europe/Paris`); the zone's name when Intl does not know it. */
export function formatInZone(ms: number | null, timeZone: string): string {
  if (ms === null) return '—';
  let f = zoned.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-GB', { timeZone, weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    } catch {
      return `${formatTime(ms)} (local; ${timeZone} unknown here)`;
    }
    zoned.set(timeZone, f);
  }
  return `${f.format(ms)} ${timeZone}`;
}

