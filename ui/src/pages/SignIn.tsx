import { useState } from 'react';
import { api } from '../lib/api';
import { storeToken } from '../lib/auth';

export function SignIn({ reason, onSignedIn }: { reason: string | null; onSignedIn: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main className="signin">
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await api('GET', '/v1/groups?limit=1', undefined, { token: token.trim(), quiet401: true });
            storeToken(token.trim());
            onSignedIn();
          } catch (err) {
            setError((err as Error).message);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Sign in to kinsight</h1>
        {reason && <p className="error">{reason}</p>}
        <p className="muted">
          Paste the server's token (<code>KINSIGHT_TOKEN</code>, or the one <code>kinsight up</code> prints and keeps in <code>kinsight-data/up-token</code>). A
          read token is enough to look; changing alarms needs the admin token.
        </p>
        <label>
          Token
          <input type="password" autoComplete="current-password" value={token} onChange={(e) => setToken(e.target.value)} required autoFocus />
        </label>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
