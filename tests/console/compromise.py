"""Report a sub-CA's compromise in headless Chromium, as an admin would.

Run by tests/console.rs (`reporting_a_sub_ca_compromise_in_the_console`) against a real
`pnc-pki serve`, with the helpers of browser.py. Every check raises on failure, so the exit
status is the verdict. The fixture (PNC_UI_FIXTURE) names the admin, the CA and the number of
certificates the store says will be revoked. Screenshots go to $SHOTS.
"""

import sys
import time

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from browser import BASE, FIX, browser, check, click, nav, shot, sign_in_with_keyboard, text


def state(d):
    """The status page's state, or None while the page is being reloaded."""
    try:
        return d.find_element(By.ID, "compromise-state").text.strip()
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def run(d):
    ca = FIX["ca"]
    sign_in_with_keyboard(d, FIX["admin"]["name"], FIX["admin"]["password"])
    check(d.title.startswith("Dashboard"), "the admin signed in")
    nav(d, "CA hierarchy")
    check(d.find_elements(By.CSS_SELECTOR, f"button[data-ca='{FIX['root']}']") == [],
          "no compromise button for the root")
    button = d.find_element(By.CSS_SELECTOR, f"button[data-ca='{ca}']")
    check(button.text.strip() == "Report compromise…", "a compromise button for the sub-CA")
    click(d, button)

    check(d.title.startswith("Confirm compromise response"), "a confirmation step first")
    check(text(d, "confirm-revoked") == str(FIX["revoked"]),
          f"the confirmation counts the store's {FIX['revoked']} valid certificates")
    check(FIX["parent"] in text(d, "confirm-parent"), "the confirmation names the parent")
    check(text(d, "confirm-reenroll") == str(FIX["reenroll"]),
          "the confirmation counts the holders to enroll again")
    check("cannot be undone" in d.page_source, "the confirmation says it cannot be undone")
    reason = Select(d.find_element(By.ID, "reason"))
    check(reason.first_selected_option.get_attribute("value") == "keyCompromise",
          "keyCompromise is the default reason")
    check(d.find_element(By.ID, "cancel").get_attribute("href").endswith("/ui/hierarchy"),
          "Cancel goes back to the hierarchy")
    shot(d, "compromise-confirm")
    reason.select_by_value("keyCompromise")
    click(d, d.find_element(By.ID, "confirm-compromise"))

    check(d.current_url.endswith(f"/ui/cas/{ca}/compromise"), "the status page after confirming")
    seen = []
    deadline = time.time() + 180
    while time.time() < deadline:
        s = state(d)
        if s and (not seen or seen[-1] != s):
            seen.append(s)
            if s == "running":
                shot(d, "compromise-running")
        if s in ("finished", "failed", "incomplete"):
            break
        # The page reloads itself (meta refresh) while the response runs: no script, no click.
        time.sleep(0.5)
    print("states seen:", seen, flush=True)
    check(state(d) == "finished", "the status page reaches finished by reloading itself")
    check(text(d, "report-revoked") == str(FIX["revoked"]), "the report's revoked count")
    check(text(d, "report-reenroll") == str(FIX["reenroll"]), "the report's re-enrollment count")
    steps = [r.get_attribute("data-step") for r in
             d.find_elements(By.CSS_SELECTOR, "#report-steps tbody tr")]
    check(steps[:4] == ["stop", "revoke-ca", "revoke-issued", "replace"],
          f"the report lists the steps ({steps})")
    href = d.find_element(By.ID, "reenroll-csv").get_attribute("href")
    check(href.endswith(f"/ui/cas/{ca}/compromise/reenroll.csv"), "a link to the CSV list")
    shot(d, "compromise-report")
    print("ok: compromise reported in the browser", flush=True)


def main():
    d = browser()
    try:
        run(d)
    except AssertionError:
        print("at:", d.current_url, "title:", d.title, flush=True)
        print(d.page_source[:4000], flush=True)
        raise
    finally:
        d.quit()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, flush=True)
        sys.exit(1)
