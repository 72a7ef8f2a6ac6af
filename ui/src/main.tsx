import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { adoptTokenFromUrl } from './lib/auth';
import { applyTheme, initialTheme } from './lib/theme';
import './styles.css';

// Before anything renders: `/?token=T` signs in and leaves the address bar.
adoptTokenFromUrl();
applyTheme(initialTheme());

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
