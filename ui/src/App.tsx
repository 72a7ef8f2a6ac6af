// The console's shell: sign-in gate, navigation, theme, and the pages by path.

import { useEffect, useState } from 'react';
import { api, onUnauthorized } from './lib/api';
import { clearToken, storedToken } from './lib/auth';
import { navigate, useLocation } from './lib/router';
import { initialTheme, saveTheme, type Theme } from './lib/theme';
import { SignIn } from './pages/SignIn';
import { Dashboards } from './pages/Dashboards';
import { LogGroups } from './pages/LogGroups';
import { Insights } from './pages/Insights';
import { Alarms } from './pages/Alarms';
import { Metrics } from './pages/Metrics';
import { Restarts } from './pages/Restarts';

type AuthState = 'checking' | 'in' | 'out';

const PAGES = [
  { path: '/dashboards', label: 'Dashboards' },
  { path: '/logs', label: 'Log groups' },
  { path: '/insights', label: 'Logs Insights' },
  { path: '/metrics', label: 'Metrics' },
  { path: '/alarms', label: 'Alarms' },
  { path: '/restarts', label: 'Restarts' },
];

export function App() {
  const [auth, setAuth] = useState<AuthState>('checking');
  const [reason, setReason] = useState<string | null>(null);
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const loc = useLocation();

  useEffect(() => {
    // A stored token is tried; without one, a server without authentication (loopback, no
    // KINSIGHT_TOKEN) lets everyone in.
    api('GET', '/v1/groups?limit=1', undefined, { quiet401: true }).then(
      () => setAuth('in'),
      (e) => {
        if (e.status === 401) {
          if (storedToken()) setReason('The stored token was not accepted; sign in again.');
          setAuth('out');
        } else {
          setReason(e.message);
          setAuth(storedToken() ? 'in' : 'out');
        }
      },
    );
    return onUnauthorized(() => {
      setReason('The server did not accept the token; sign in again.');
      setAuth('out');
    });
  }, []);

  if (auth === 'checking') return <p className="muted center">Connecting…</p>;
  if (auth === 'out')
    return (
      <SignIn
        reason={reason}
        onSignedIn={() => {
          setReason(null);
          setAuth('in');
        }}
      />
    );

  const path = loc.path === '/' ? '/dashboards' : loc.path;
  let page: React.ReactNode;
  if (path.startsWith('/dashboards')) page = <Dashboards />;
  else if (path.startsWith('/logs')) page = <LogGroups />;
  else if (path.startsWith('/insights')) page = <Insights />;
  else if (path.startsWith('/metrics')) page = <Metrics />;
  else if (path.startsWith('/alarms')) page = <Alarms />;
  else if (path.startsWith('/restarts')) page = <Restarts />;
  else
    page = (
      <div className="empty-state">
        <h1>Not found</h1>
        <p>
          No page at <code>{loc.path}</code>.
        </p>
      </div>
    );

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <a
          className="brand"
          href="/dashboards"
          onClick={(e) => {
            e.preventDefault();
            navigate('/dashboards');
          }}
        >
          kinsight
        </a>
        <nav aria-label="Main">
          {PAGES.map((p) => (
            <a
              key={p.path}
              href={p.path}
              aria-current={path.startsWith(p.path) ? 'page' : undefined}
              onClick={(e) => {
                if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
                e.preventDefault();
                navigate(p.path);
              }}
            >
              {p.label}
            </a>
          ))}
        </nav>
        <span className="spacer" />
        <button
          type="button"
          onClick={() => {
            const t = theme === 'dark' ? 'light' : 'dark';
            saveTheme(t);
            setTheme(t);
          }}
          aria-label={`Switch to ${theme === 'dark' ? 'light' : 'dark'} theme`}
          title="Theme"
        >
          {theme === 'dark' ? '☀ Light' : '☾ Dark'}
        </button>
        {storedToken() && (
          <button
            type="button"
            onClick={() => {
              clearToken();
              setReason(null);
              setAuth('out');
            }}
          >
            Sign out
          </button>
        )}
      </header>
      {reason && auth === 'in' && <p className="banner error">{reason}</p>}
      <main id="main" key={theme}>
        {page}
      </main>
    </>
  );
}
