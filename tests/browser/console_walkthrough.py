"""The console walk-through in a real browser (headless Chromium driven by Playwright).

Run by crates/cli/tests/console_browser.rs, which starts `aegis serve` and passes, in the environment:
  AEGIS_URL        the console's address (with the base path, ending in /)
  AEGIS_SETUP      the one-time setup link `aegis serve` printed
  AEGIS_MODEL      a model file to upload (a pickle with a code-execution payload, written by the test as bytes)
  AEGIS_SHOTS      a directory for one screenshot per page
  AEGIS_CHROMIUM   the Chromium binary

Every page visited is checked for Content-Security-Policy violations (Chromium reports them on the console)
and for axe-core WCAG 2 A/AA violations; the script exits non-zero with a list of what failed.
The model file is only uploaded as bytes; nothing here loads it.
"""

import base64
import hashlib
import hmac
import os
import re
import struct
import sys
import time

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import sync_playwright

URL = os.environ["AEGIS_URL"]
SETUP = os.environ["AEGIS_SETUP"]
MODEL = os.environ["AEGIS_MODEL"]
SHOTS = os.environ["AEGIS_SHOTS"]
CHROMIUM = os.environ.get("AEGIS_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple 42"
AUDITOR_PASSWORD = "auditor reads every ledger 7"

problems = []
csp_violations = []
axe = Axe()
visited = []


def totp(secret_b32, at=None):
    """RFC 6238 TOTP (SHA-1, 6 digits, 30 s), written out so the test needs no TOTP library."""
    key = base64.b32decode(secret_b32.replace(" ", "") + "=" * (-len(secret_b32.replace(" ", "")) % 8))
    counter = int((at or time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def check(page, name):
    """Screenshot the page, run axe-core on it, and remember any WCAG 2 A/AA violation."""
    page.wait_for_load_state("networkidle")
    page.screenshot(path=os.path.join(SHOTS, f"{len(visited):02d}-{name}.png"), full_page=True)
    visited.append(name)
    results = axe.run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa"]}})
    for v in results.response["violations"]:
        targets = [n["target"] for n in v["nodes"]][:3]
        problems.append(f"{name}: axe {v['id']} ({v['impact']}): {v['help']} at {targets}")


def expect(condition, what):
    if not condition:
        problems.append(what)
        print("FAILED:", what, file=sys.stderr)


def on_console(msg):
    if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
        csp_violations.append(msg.text)


def sign_in(page, user, password, code):
    page.goto(URL + "sign-in")
    page.fill("#username", user)
    page.fill("#password", password)
    if code:
        page.fill("#totp", code)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("console", on_console)

        # 1. The first administrator, from the one-time link, with an authenticator enrolment.
        page.goto(URL)
        expect("/sign-in" in page.url, f"an anonymous visit to / goes to sign-in, not {page.url}")
        check(page, "sign-in-empty")
        page.goto(SETUP)
        check(page, "setup")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        secret = page.text_content("#totp-secret").strip()
        expect(len(secret.replace(" ", "")) >= 16, "the setup page shows the TOTP secret")
        expect(page.locator("figure.qr svg").count() == 1, "the setup page shows a QR code")
        check(page, "setup-enrolment")

        # 2. Sign in with the password and a TOTP code; a wrong code first.
        sign_in(page, "admin", PASSWORD, "000000" if totp(secret) != "000000" else "111111")
        expect("not right" in page.content(), "a wrong TOTP code is refused in plain words")
        sign_in(page, "admin", PASSWORD, totp(secret))
        expect(page.url.rstrip("/") == URL.rstrip("/"), f"signing in lands on the overview, not {page.url}")
        expect("Set up Aegis" in page.content(), "an installation without models shows the setup checklist")
        check(page, "overview-setup")

        # 3. Add a model: upload, then wait for its scan run to finish.
        page.goto(URL + "assets")
        check(page, "assets-empty")
        page.fill("#name", "fraud-scorer")
        page.select_option("#kind", "model")
        page.fill("#owner", "risk-team")
        page.set_input_files("#file", MODEL)
        page.click("form[action$='/assets'] button[type=submit]")
        page.wait_for_load_state("networkidle")
        expect("/assets/fraud-scorer" in page.url, f"adding a model opens its page, not {page.url}")
        deadline = time.time() + 120
        while time.time() < deadline:
            page.reload()
            scan_row = page.locator("#runs tr", has_text="scan")
            if scan_row.count() and "finished" in scan_row.first.inner_text():
                break
            time.sleep(1)
        expect("finished" in page.locator("#runs").inner_text(), "the scan run finished within 2 minutes")
        check(page, "asset-detail")

        # 4. Open the finding and accept it as a risk for 30 days.
        page.goto(URL + "findings")
        check(page, "findings")
        links = page.locator("table.list tbody a[href*='/findings/']")
        expect(links.count() >= 1, "the uploaded pickle's payload is a finding")
        links.first.click()
        page.wait_for_load_state("networkidle")
        expect("What to do" in page.content(), "a finding says what to do")
        check(page, "finding-detail")
        page.fill("#comment", "Vendor model under review; isolated host.")
        page.fill("#accept_days", "30")
        page.click("form[action$='/triage'] button[type=submit]")
        page.wait_for_load_state("networkidle")
        expect("risk accepted until" in page.content(), "the finding shows its accepted risk")
        expect("risk accepted" in page.locator("section[aria-labelledby=history]").inner_text(),
               "the history records the acceptance")
        check(page, "finding-accepted")

        # 5. Create an API key (the secret is shown once), then revoke it; add an auditor.
        page.goto(URL + "gateway")
        check(page, "gateway")
        page.click("text=Create a key")
        page.fill("#k-name", "billing-app")
        page.fill("#k-models", "demo-fraud")
        page.click("form[action$='/gateway/keys'] button[type=submit]")
        page.wait_for_load_state("networkidle")
        key_secret = page.text_content("#key-secret").strip()
        expect(key_secret.startswith("aeg_"), "the new key's secret is shown")
        check(page, "gateway-key-created")
        page.goto(URL + "gateway")
        expect(key_secret not in page.content(), "the secret is not shown again")
        page.once("dialog", lambda d: d.accept())
        row = page.locator("tr", has_text="billing-app")
        row.locator("button", has_text="Revoke").click()
        page.wait_for_load_state("networkidle")
        expect("revoked" in page.locator("tr", has_text="billing-app").inner_text(), "the key is revoked")
        page.click("text=Add a person")
        page.fill("#u-name", "auditor1")
        page.select_option("#u-role", "auditor")
        page.fill("#u-pass", AUDITOR_PASSWORD)
        page.click("form[action$='/gateway/users'] button[type=submit]")
        page.wait_for_load_state("networkidle")

        # 6. The audit log verifies; monitor and settings render.
        page.goto(URL + "audit")
        expect("Chain verified: OK" in page.content(), "the audit page says the chain verified")
        expect("key.revoke" in page.content(), "the revocation is in the audit log")
        check(page, "audit")
        page.goto(URL + "monitor")
        check(page, "monitor")
        page.goto(URL + "settings")
        check(page, "settings")
        page.goto(URL)
        check(page, "overview")

        # 7. An auditor sees and cannot change.
        auditor = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        apage = auditor.new_page()
        apage.on("console", on_console)
        sign_in(apage, "auditor1", AUDITOR_PASSWORD, None)
        expect("/sign-in" not in apage.url, "the auditor signs in without a second factor")
        apage.goto(URL + "findings?state=all")
        apage.locator("table.list tbody a[href*='/findings/']").first.click()
        apage.wait_for_load_state("networkidle")
        expect(apage.locator("form[action$='/triage']").count() == 0, "an auditor has no triage form")
        check(apage, "auditor-finding")
        response = apage.request.post(apage.url + "/triage", form={"state": "resolved", "comment": "x"})
        expect(response.status == 403, f"an auditor's triage is refused (got {response.status})")
        apage.goto(URL + "gateway")
        expect("Not for your role" in apage.content(), "an auditor cannot open the gateway page")

        browser.close()

    for v in csp_violations:
        problems.append(f"CSP violation: {v}")
    print(f"visited {len(visited)} pages: {', '.join(visited)}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
