"""Drive the pnc-pki operator console in headless Chromium (Selenium WebDriver).

Run by tests/console_browser.rs against a real `pnc-pki serve`; everything it needs comes in
environment variables (see `main`). Every check raises on failure, so the exit status is the
verdict. Screenshots of each page at 1280x800 (and the dashboard at a phone's width) go to
$SHOTS.
"""

import json
import os
import sys

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["PNC_UI_URL"].rstrip("/")
FIX = json.loads(os.environ["PNC_UI_FIXTURE"])
SHOTS = os.environ["SHOTS"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


def shot(d, name):
    d.save_screenshot(os.path.join(SHOTS, name + ".png"))


def text(d, id_):
    return d.find_element(By.ID, id_).text.strip()


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,800", "--force-device-scale-factor=1"):
        o.add_argument(a)
    svc = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(options=o, service=svc)
    d.set_window_size(1280, 800)
    d.implicitly_wait(2)
    return d


def replaced(old):
    """A wait condition: the element `old` no longer belongs to the page. While the next page
    replaces it, chromedriver sometimes answers "Node with given id does not belong to the
    document" instead of a stale-element error (seen once in a full run): that is the same
    answer, not a failure."""

    def gone(_d):
        try:
            old.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise

    return gone


def navigates(d, act):
    """Do `act` (a click, an Enter) and wait until the next page has replaced this one."""
    old = d.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(d, 15).until(replaced(old))


def click(d, el):
    navigates(d, el.click)


def sign_in_with_keyboard(d, name, password):
    """The sign-in form with the keyboard only: the name field has focus, Tab, Enter."""
    d.get(BASE + "/ui/")
    check(d.find_element(By.CSS_SELECTOR, "form[action='/ui/login']") is not None,
          "GET /ui/ without a session shows the sign-in form")
    active = d.switch_to.active_element
    check(active.get_attribute("name") == "name", "the name field has the focus")
    active.send_keys(name)
    active.send_keys(Keys.TAB)
    d.switch_to.active_element.send_keys(password)
    field = d.switch_to.active_element
    navigates(d, lambda: field.send_keys(Keys.ENTER))


def nav(d, label):
    click(d, d.find_element(By.LINK_TEXT, label))


def no_alert(d):
    try:
        d.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def main():
    d = browser()
    try:
        run(d)
    except AssertionError:
        # What the browser was looking at, for the test log.
        print("at:", d.current_url, "title:", d.title, flush=True)
        print(d.page_source[:4000], flush=True)
        raise
    finally:
        d.quit()


def run(d):
    # Sign-in page, then the dashboard.
    d.get(BASE + "/ui/")
    shot(d, "signin")
    sign_in_with_keyboard(d, FIX["admin"]["name"], FIX["admin"]["password"])
    check(d.title.startswith("Dashboard"), "signed in to the dashboard")
    counts = FIX["counts"]
    check(text(d, "count-all") == str(counts["all"]), "dashboard: all certificates = store")
    check(text(d, "count-valid") == str(counts["valid"]), "dashboard: valid = store")
    check(text(d, "count-revoked") == str(counts["revoked"]), "dashboard: revoked = store")
    check(text(d, "health-hsm") == "ok" and text(d, "health-db") == "ok", "dashboard: health")
    shot(d, "dashboard")
    # A phone's width: no sideways scrolling of the page.
    d.set_window_size(390, 844)
    width = d.execute_script("return document.documentElement.scrollWidth")
    inner = d.execute_script("return window.innerWidth")
    shot(d, "dashboard-phone")
    check(width <= inner + 1, f"no horizontal overflow at phone width ({width} <= {inner})")
    d.set_window_size(1280, 800)

    nav(d, "CA hierarchy")
    check(len(d.find_elements(By.CSS_SELECTOR, "#tree .node")) >= 3, "hierarchy tree shows CAs")
    shot(d, "hierarchy")

    # Find a certificate by its EVSE ID and open it.
    mine = FIX["mine"]
    nav(d, "Certificates")
    box = d.find_element(By.ID, "q")
    box.send_keys(mine["evse_id"])
    navigates(d, lambda: box.send_keys(Keys.ENTER))
    link = d.find_element(By.CSS_SELECTOR,
                          f"a[href='/ui/certificates/{mine['issuer']}/{mine['serial']}']")
    shot(d, "certificates")
    click(d, link)
    check(text(d, "serial") == mine["serial"], "detail page of the certificate found")
    check(text(d, "ocsp-status") == "good", "OCSP says good before the revocation")
    shot(d, "certificate")

    # Revoke with a reason, through the confirmation page.
    Select(d.find_element(By.ID, "reason")).select_by_value("keyCompromise")
    click(d, d.find_element(By.XPATH, "//button[normalize-space()='Revoke…']"))
    check(d.title.startswith("Confirm revocation"), "a confirmation step before revoking")
    check(text(d, "confirm-reason") == "keyCompromise", "the confirmation names the reason")
    shot(d, "revoke-confirm")
    click(d, d.find_element(By.ID, "confirm-revoke"))
    check(text(d, "status").startswith("revoked"), "the page says revoked")
    check(text(d, "ocsp-status").startswith("revoked"), "OCSP says revoked on its page")
    check("days left" not in text(d, "fields"), "a revoked certificate shows no days left")
    rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")]
    actor = "ui:" + FIX["admin"]["name"]
    check(any("certificate.revoke" in r and actor in r for r in rows),
          "a new audit entry for the revocation, under the person's name")
    shot(d, "certificate-revoked")

    # A subject from a CSR holding <script> is text.
    s = FIX["script"]
    d.get(f"{BASE}/ui/certificates/{s['issuer']}/{s['serial']}")
    # RFC 4514 escapes < and > in a name: shown as \<script\>, still text.
    check(r"\<script\>alert(1)\</script\>" in text(d, "subject"), "the subject shows <script> as text")
    check(no_alert(d), "no script ran")
    check(d.find_elements(By.TAG_NAME, "script") == [], "no script element on the page")

    # A form posted without the CSRF token is refused and changes nothing.
    d.execute_script(
        "document.querySelectorAll('form[action$=\"/revoke\"] input[name=csrf]')"
        ".forEach(function (e) { e.remove(); });")
    click(d, d.find_element(By.XPATH, "//button[normalize-space()='Revoke…']"))
    check("csrf" in d.page_source and d.title.startswith("Forbidden"),
          "a form without the CSRF token is refused")
    d.get(f"{BASE}/ui/certificates/{s['issuer']}/{s['serial']}")
    check(text(d, "status") == "valid", "nothing was revoked by the refused form")

    # The audit log, and its verification.
    nav(d, "Audit log")
    # Long actors and targets wrap in their own column: Details keeps a readable width, and
    # every such cell holds its whole value in its title.
    widths = [c.size["width"] for c in
              d.find_elements(By.CSS_SELECTOR, "table.audit tbody td:nth-child(6)")]
    check(widths and min(widths) >= 150, f"the Details column stays readable ({widths[:3]} px)")
    check(all(c.get_attribute("title") == c.text for c in
              d.find_elements(By.CSS_SELECTOR, "table.audit tbody td:nth-child(5)")),
          "each target's title holds the whole value")
    shot(d, "audit")
    click(d, d.find_element(By.ID, "verify"))
    check("intact" in text(d, "verify-result"), "the audit chain verifies")
    shot(d, "audit-verified")

    nav(d, "API clients")
    check(len(d.find_elements(By.CSS_SELECTOR, "#clients tbody tr")) >= 1, "API clients listed")
    shot(d, "clients")
    nav(d, "Contracts")
    shot(d, "contracts")
    nav(d, "Provisioning certificates")
    shot(d, "provisioning-certificates")

    # Sign-out ends the session.
    click(d, d.find_element(By.XPATH, "//button[normalize-space()='Sign out']"))
    check(d.current_url.endswith("/ui/login"), "sign-out lands on the sign-in page")
    d.get(BASE + "/ui/certificates")
    check(d.current_url.endswith("/ui/login"), "after sign-out, pages need a new sign-in")

    # A CPO user sees its own certificates only, also when typing another's URL.
    sign_in_with_keyboard(d, FIX["cpo"]["name"], FIX["cpo"]["password"])
    check(d.title.startswith("Dashboard"), "the CPO user signed in")
    check(text(d, "count-all") == str(FIX["cpo_count"]), "the CPO's dashboard counts its own")
    nav(d, "Certificates")
    page = d.page_source
    theirs = FIX["theirs"]
    check(mine["serial"] in page, "the CPO user sees its certificate")
    check(theirs["serial"] not in page, "the CPO user does not see another operator's")
    d.get(f"{BASE}/ui/certificates/{theirs['issuer']}/{theirs['serial']}")
    check(d.title.startswith("Forbidden") and "forbidden_tenant" in d.page_source,
          "another operator's certificate cannot be reached by URL")
    shot(d, "cpo-forbidden")
    check(d.find_elements(By.LINK_TEXT, "Audit log") == [], "no audit log link for a CPO")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, flush=True)
        sys.exit(1)
