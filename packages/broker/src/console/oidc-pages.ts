/**
 * The page a refused company sign-in lands on: the reason, safe to show, as text in static HTML
 * (escaped; the console's CSP applies), with the way back to the console.
 */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);

/** The HTML of a refused sign-in. */
export function oidcSignInFailedPage(reason: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in failed · Tether</title>
<link rel="stylesheet" href="/console/console.css">
</head>
<body>
<main>
<h1>Tether</h1>
<h2>Sign-in failed</h2>
<p id="reason" role="alert">${escapeHtml(reason)}</p>
<p><a href="/console">Back to sign in</a></p>
</main>
</body>
</html>
`;
}
