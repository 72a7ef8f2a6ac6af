// Sign-in with a bearer token (docs/api.md): `/?token=T` — what `kinsight up` prints — signs
// the browser in, keeps the token in localStorage and takes it out of the address bar at once
// (history.replaceState), so it is not left in the history, bookmarks or screenshots.

const KEY = 'kinsight.token';

export function storedToken(): string | null {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string): void {
  localStorage.setItem(KEY, token);
}

export function clearToken(): void {
  localStorage.removeItem(KEY);
}

/** Takes `token` from the address bar (stores it and removes it from the URL). */
export function adoptTokenFromUrl(loc: Location = window.location, hist: History = window.history): boolean {
  const url = new URL(loc.href);
  const token = url.searchParams.get('token');
  if (token === null) return false;
  url.searchParams.delete('token');
  const rest = url.searchParams.toString();
  hist.replaceState(hist.state, '', url.pathname + (rest ? `?${rest}` : '') + url.hash);
  if (token.trim() === '') return false;
  storeToken(token.trim());
  return true;
}
