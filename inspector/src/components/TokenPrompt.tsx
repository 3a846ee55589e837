/**
 * Asks for the server's token when it refuses the connection (401). The token is kept in this
 * tab's sessionStorage and sent as `?token=` on the WebSocket, as browsers cannot set headers there.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Connection } from '../connection.js';
import { useSubscription } from '../hooks.js';

/** A modal form shown while the connection is `unauthorized`. */
export function TokenPrompt({ conn }: { conn: Connection }): JSX.Element | null {
  useSubscription(conn);
  const [token, setToken] = useState('');
  const input = useRef<HTMLInputElement>(null);
  const open = conn.state === 'unauthorized';
  useEffect(() => { if (open) input.current?.focus(); }, [open]);
  if (!open) return null;
  return (
    <div class="modal-backdrop">
      <form
        class="modal" role="dialog" aria-modal="true" aria-labelledby="token-title" aria-describedby="token-why"
        onSubmit={(e) => { e.preventDefault(); conn.setToken(token); }}
      >
        <h2 id="token-title">Token required</h2>
        <p id="token-why">
          This runtime needs its access token (<code>AGENTRY_TOKEN</code>): {conn.detail}. It is kept for this
          browser tab only.
        </p>
        <label>
          Token
          <input ref={input} type="password" autocomplete="current-password" required minLength={1}
            value={token} onInput={(e) => { setToken(e.currentTarget.value); }} aria-label="Access token" />
        </label>
        <div class="row">
          <button type="submit" class="primary">Connect</button>
        </div>
      </form>
    </div>
  );
}
