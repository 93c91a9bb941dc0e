import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { ApiError } from '../api';
import { signIn } from '../session';
import { navigate } from '../router';

export function SignIn({ next }: { next: string }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  async function submit(event: SubmitEvent) {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    setBusy(true);
    setError(undefined);
    try {
      await signIn(String(form.get('username')), String(form.get('password')));
      navigate(next.startsWith('/') ? next : '/', true);
    } catch (caught) {
      const problem = caught instanceof ApiError ? caught.problem : undefined;
      setError(
        problem?.status === 401 || problem?.status === 400
          ? 'That username and password do not match.'
          : problem?.status === 429
            ? 'Too many attempts. Wait a minute and try again.'
            : (caught as Error).message,
      );
    } finally {
      setBusy(false);
    }
  }
  return html`
    <article style="max-width: 28rem; margin: 2rem auto">
      <h1>Sign in</h1>
      <form onSubmit=${submit}>
        <label>
          Username
          <input name="username" autocomplete="username" required autofocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required />
        </label>
        ${error && html`<p role="alert" class="field-error">${error}</p>`}
        <button type="submit" aria-busy=${busy} disabled=${busy}>Sign in</button>
      </form>
    </article>
  `;
}
