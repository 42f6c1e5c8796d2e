"""Server-rendered pages without scripts: /phone (QR code + how to trust the kiosk's CA)."""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["phone_page"]


def phone_page(base_url: str, ca_cert: Path | None) -> str:
    """The page a phone user is sent to: scan, install the CA, open the kiosk."""
    from hai_edge.apps.kiosk.tls import ca_fingerprint, qr_svg

    url = base_url.rstrip("/") + "/"
    esc = html.escape
    if ca_cert is None:
        body = (
            "<p>This kiosk serves plain HTTP on the loopback address, so only this machine "
            "can use it. To let phones and tablets on the clinic network connect, start it "
            "with a LAN address, e.g. <code>hai-edge kiosk --host 0.0.0.0</code>: it then "
            "serves HTTPS with its own certificate authority and this page shows how to "
            "install it.</p>")
        qr = ""
    else:
        fp = ca_fingerprint(ca_cert.read_bytes())
        qr = (f'<figure class="qr">{qr_svg(url + "phone")}'
              f'<figcaption>{esc(url)}phone</figcaption></figure>')
        body = f"""
<ol class="steps">
<li>Scan the code with the phone's camera (same Wi-Fi as the kiosk). The browser warns that the
connection is not private: that is expected the first time. Continue to the site.</li>
<li>Download the kiosk's certificate authority: <a class="button" href="/ca.pem"
download="hai-edge-kiosk-ca.crt">hai-edge-kiosk-ca.crt</a></li>
<li><b>Android:</b> Settings &rarr; Security &rarr; Encryption &amp; credentials &rarr; Install a
certificate &rarr; CA certificate, pick the downloaded file.
<b>iPhone/iPad:</b> open the file, then Settings &rarr; Profile Downloaded &rarr; Install; then
Settings &rarr; General &rarr; About &rarr; Certificate Trust Settings &rarr; enable full trust
for "hai-edge kiosk local CA".</li>
<li>Check that the fingerprint the phone shows (SHA-256) is<br><code class="fp">{esc(fp)}</code></li>
<li>Open <a href="{esc(url)}">{esc(url)}</a> again: no warning now; camera and microphone work.</li>
</ol>
<p class="small">The CA only vouches for this kiosk's own certificate. Remove it from the phone
when the phone leaves the clinic.</p>"""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connect a phone - hai-edge kiosk</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css"></head>
<body><header class="bar"><a class="brand" href="/">hai-edge kiosk</a></header>
<main class="page phone"><h1>Connect a phone or tablet</h1>{qr}{body}</main></body></html>
"""
